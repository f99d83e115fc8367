//! The one place where LDAP result codes (RFC 4511 §4.1.9) become `DirectoryError`s, and
//! the codes that say a server cannot serve now.

use crate::directory::DirectoryError;

/// Whether an answer says the server cannot serve writes now (it is read-only and refers
/// them elsewhere or refuses them, busy, or shutting down): another server should take the
/// requests.
pub(super) fn cannot_serve(rc: u32, text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    matches!(rc, 10 | 51 | 52)
        || rc == 53
            && [
                "read-only",
                "read only",
                "readonly",
                "shutting down",
                "shadow context",
            ]
            .iter()
            .any(|w| t.contains(w))
}

/// The one place where LDAP result codes (RFC 4511 §4.1.9) become directory errors.
pub fn map_result_code(rc: u32, text: &str, dn: &str) -> DirectoryError {
    let why = match (text.is_empty(), ad_reason(text)) {
        (_, Some(readable)) => readable,
        (true, None) => result_code_name(rc).to_owned(),
        (false, None) => format!("{}: {text}", result_code_name(rc)),
    };
    // AD: the sAMAccountName (or another account name) is taken, whatever the result code
    if ad_code(text) == Some("00000524") {
        return DirectoryError::AlreadyExists(dn.to_owned());
    }
    match rc {
        32 => DirectoryError::NoSuchObject(dn.to_owned()),
        16 => DirectoryError::NoSuchValue(why),
        // Samba's answers to deleting a member that is not there
        53 if text.contains("already deleted") || text.contains("doesn't exist for target") => {
            DirectoryError::NoSuchValue(why)
        }
        122 => DirectoryError::PreconditionFailed(why),
        68 => DirectoryError::AlreadyExists(dn.to_owned()),
        // adminLimitExceeded: the request is too large for the directory, not a server fault
        11 | 17..=21 | 34 | 53 | 64..=67 | 69 => DirectoryError::Rejected(why),
        50 => DirectoryError::InsufficientAccess(why),
        3 => DirectoryError::Timeout,
        49 | 51 | 52 => DirectoryError::Unavailable(why),
        _ => DirectoryError::Other {
            code: rc,
            message: why,
        },
    }
}

/// The Windows error code Active Directory (and Samba) put before the text: `0000052D`.
fn ad_code(text: &str) -> Option<&str> {
    let (code, _) = text.split_once(':')?;
    (code.len() == 8 && code.chars().all(|c| c.is_ascii_hexdigit())).then_some(code)
}

/// Active Directory (and Samba) put a Windows error code before the text
/// (`0000052D: Constraint violation - check_password_restrictions: …`): said in words.
pub fn ad_reason(text: &str) -> Option<String> {
    let code = ad_code(text)?;
    let (_, rest) = text.split_once(':')?;
    let detail = rest
        .rsplit_once(" - ")
        .map(|(_, d)| d)
        .unwrap_or(rest)
        .trim()
        .trim_start_matches("check_password_restrictions: ");
    let what = match code.to_ascii_uppercase().as_str() {
        "0000052D" => "the password does not meet the domain's password policy",
        "00000524" => "the account name is already in use in the domain",
        "00002071" => "an object with this name already exists",
        "00000005" => "access denied to the bridge's service account",
        "0000001F" | "00000057" => "the directory refused the value",
        _ => return Some(format!("{} ({code})", rest.trim())),
    };
    Some(format!("{what}: {detail} ({code})"))
}

pub fn result_code_name(rc: u32) -> &'static str {
    match rc {
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        11 => "adminLimitExceeded",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        18 => "inappropriateMatching",
        19 => "constraintViolation",
        20 => "attributeOrValueExists",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        64 => "namingViolation",
        65 => "objectClassViolation",
        66 => "notAllowedOnNonLeaf",
        67 => "notAllowedOnRDN",
        68 => "entryAlreadyExists",
        69 => "objectClassModsProhibited",
        80 => "other",
        122 => "assertionFailed",
        _ => "LDAP error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_only_busy_or_stopping_server_is_one_that_cannot_serve() {
        assert!(cannot_serve(10, "")); // a consumer's referral
        assert!(cannot_serve(53, "shadow context; no update referral"));
        assert!(cannot_serve(52, ""));
        assert!(cannot_serve(51, ""));
        assert!(cannot_serve(53, "server is shutting down"));
        assert!(!cannot_serve(53, "0000052D: Constraint violation"));
        assert!(!cannot_serve(68, ""));
    }

    #[test]
    fn active_directory_codes_are_said_in_words() {
        let samba = "0000052D: Constraint violation - check_password_restrictions: the password is too short. It should be equal or longer than 7 characters!";
        let e = map_result_code(19, samba, "");
        assert!(
            matches!(&e, DirectoryError::Rejected(t)
            if t.starts_with("the password does not meet the domain's password policy: the password is too short")
            && t.ends_with("(0000052D)")),
            "{e:?}"
        );
        assert_eq!(ad_reason("plain text"), None);
    }

    #[test]
    fn result_codes_map_to_actionable_errors() {
        assert_eq!(
            map_result_code(68, "", "uid=a"),
            DirectoryError::AlreadyExists("uid=a".into())
        );
        assert!(
            matches!(map_result_code(65, "object class 'inetOrgPerson' requires attribute 'sn'", ""),
            DirectoryError::Rejected(t) if t.contains("objectClassViolation") && t.contains("'sn'"))
        );
        assert!(matches!(
            map_result_code(52, "", ""),
            DirectoryError::Unavailable(_)
        ));
        assert!(matches!(
            map_result_code(11, "", ""),
            DirectoryError::Rejected(t) if t == "adminLimitExceeded"
        ));
    }
}
