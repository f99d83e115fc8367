//! Countries as IdPs send them: Entra a name ("Germany", "United States"), Okta and RFC 7643
//! the ISO 3166-1 alpha-2 code ("DE"). LDAP's `c` (countryName) holds only the code, so both
//! are resolved to it (celes: the ISO 3166-1 table with official names and common aliases);
//! `co` (friendlyCountryName) can hold the name.

use std::str::FromStr;

/// A country resolved from what an IdP sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Country {
    /// ISO 3166-1 alpha-2, upper case.
    pub code: String,
    /// The name as sent when a name was sent, else the table's.
    pub name: String,
}

/// The country `value` names, by alpha-2 or alpha-3 code, official name or common alias
/// (case, spaces and punctuation ignored); `None` when it names none.
pub fn resolve(value: &str) -> Option<Country> {
    let text = value.trim();
    // celes compares names without spaces or punctuation ("UnitedStates", "CoteDIvoire")
    let squeezed: String = text.chars().filter(|c| c.is_alphanumeric()).collect();
    if squeezed.is_empty() || squeezed.len() > 64 {
        return None;
    }
    let found = celes::Country::from_str(&squeezed).ok()?;
    let is_code = squeezed.len() <= 3 && squeezed.chars().all(|c| c.is_ascii_alphabetic());
    Some(Country {
        code: found.alpha2.to_ascii_uppercase(),
        name: if is_code {
            found.long_name.to_owned()
        } else {
            text.to_owned()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_resolve_to_the_alpha2_code() {
        for (sent, code) in [
            ("Germany", "DE"),
            ("germany", "DE"),
            ("DE", "DE"),
            ("de", "DE"),
            ("DEU", "DE"),
            ("United States", "US"),
            ("United States of America", "US"),
            ("USA", "US"),
            ("United Kingdom", "GB"),
            ("The Netherlands", "NL"),
            ("Czech Republic", "CZ"),
            ("Turkey", "TR"),
        ] {
            assert_eq!(
                resolve(sent).map(|c| c.code).as_deref(),
                Some(code),
                "{sent}"
            );
        }
        assert_eq!(resolve("Germany").unwrap().name, "Germany");
        assert_eq!(
            resolve("DE").unwrap().name,
            "Germany",
            "a code gets the table's name"
        );
        for nothing in ["Atlantis", "", "  ", "XX", &"a".repeat(200)] {
            assert_eq!(resolve(nothing), None, "{nothing}");
        }
    }
}
