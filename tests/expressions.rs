//! Value expressions in `[users.derive]` against a real slapd: a value made with filters
//! (ASCII folding, case, first N characters, defaults) reaches LDAP on create and follows its
//! sources on update; `explain` previews it; a wrong expression stops the start naming its
//! key; `{a}` templates keep working beside them. (sAMAccountName on AD: `tests/ad.rs`.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

const DERIVE: &str = "[users.derive]\n";

fn with_expressions(slapd: &Slapd) -> String {
    // description and carLicense are not mapped in the example: derived here
    let exprs = "description = [\"{{ (name.givenName ~ '.' ~ name.familyName) | ascii | lower | replace(' ', '') | left(20) }}\"]\n\
                 carLicense = [\"{{ enterprise.department | default('Staff') | upper }}\"]\n";
    let cfg = test_config(slapd, &[], "");
    assert!(cfg.contains(DERIVE), "the example derives cn and sn");
    cfg.replacen(DERIVE, &format!("{DERIVE}{exprs}"), 1)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expression_folds_diacritics_and_follows_its_sources() {
    let slapd = Slapd::start();
    let bridge = Bridge::start_with(with_expressions(&slapd)).await;
    let mut body = entra_user("jmuller");
    body["name"] = json!({"givenName": "José", "familyName": "Müller"});
    body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] = json!({});
    let u = bridge.create_user(body).await;
    let e = slapd.entry(&dn_of("jmuller")).await.unwrap();
    assert_eq!(
        e.get("description"),
        Some(&vec!["jose.muller".to_owned()]),
        "{e:?}"
    );
    assert_eq!(
        e.get("carlicense"),
        Some(&vec!["STAFF".to_owned()]),
        "the default: {e:?}"
    );
    // the {a} templates beside them still make cn
    assert_eq!(e["cn"], vec!["Display jmuller"]);

    let id = u["id"].as_str().unwrap();
    let (s, b) = bridge
        .patch(
            &format!("/Users/{id}"),
            json!([
                {"op": "replace", "path": "name.familyName", "value": "Ångström-Øster"},
                {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Sales"}
            ]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let e = slapd.entry(&dn_of("jmuller")).await.unwrap();
    assert_eq!(e["description"], vec!["jose.angstrom-oster"]);
    assert_eq!(e["carlicense"], vec!["SALES"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_previews_the_value_an_expression_makes() {
    let slapd = Slapd::start();
    let bridge = Bridge::start_with(with_expressions(&slapd)).await;
    let mut body = entra_user("zoe");
    body["name"] = json!({"givenName": "Zoë", "familyName": "Saldaña"});
    let (ok, text, err) = explain_cli(&bridge.config_path, "POST", "/Users", Some(&body));
    assert!(ok, "{text}{err}");
    assert!(text.contains("description: \"zoe.saldana\""), "{text}");
    // entra_user's department, upper-cased
    assert!(text.contains("carLicense: \"R&D\""), "{text}");
}

#[test]
fn a_wrong_expression_is_refused_at_start_naming_its_key() {
    let slapd = Slapd::start();
    for (expr, says) in [
        ("{{ name.givenNam | lower }}", "no attribute name.givenNam"),
        ("{{ userName | shout }}", "the filters are"),
        ("{{ userName ", "syntax"),
    ] {
        let cfg = test_config(&slapd, &[], "").replacen(
            DERIVE,
            &format!("{DERIVE}description = [\"{expr}\"]\n"),
            1,
        );
        let (code, _, err) = check_config(&cfg);
        assert_ne!(code, Some(0), "{expr}");
        assert!(err.contains("users.derive.description[0]"), "{expr}: {err}");
        assert!(
            err.to_lowercase().contains(&says.to_lowercase()),
            "{expr}: {err}"
        );
    }
}
