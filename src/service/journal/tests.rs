use super::*;
use crate::service::write::{Op, Step, Undo};

/// Two steps: a plan worth recording.
fn plan() -> Plan {
    let mut plan = Plan::new();
    for dn in [
        "uid=a,ou=people,dc=example,dc=org",
        "uid=b,ou=people,dc=example,dc=org",
    ] {
        plan.push(Step::new(
            StepKind::Delete,
            Op::Delete {
                dn: Dn::new(dn),
                assertion: None,
            },
            Undo::Irreversible,
        ));
    }
    plan
}

fn meta() -> Meta {
    Meta {
        request_id: "r".into(),
        tenant: "t".into(),
        credential: Credential::Token {
            name: "n".into(),
            prefix: None,
        },
        operation: "delete".into(),
        resource_type: "User".into(),
        resource_id: None,
    }
}

#[tokio::test]
async fn a_plan_is_held_by_its_request_and_gone_when_the_request_ends() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(Journal::open(dir.path()).unwrap());
    let j = journal.clone();
    scope(journal.clone(), meta(), async move {
        let n = plan_started(&plan());
        note(n, Event::Sent { step: 0 });
        let files = j.files();
        assert_eq!(files.len(), 1);
        assert!(
            Claimed::take(&files[0]).unwrap().is_none(),
            "a plan in progress is not taken"
        );
        let mut one = Plan::new();
        one.steps.push(plan().steps[0].clone());
        assert_eq!(
            plan_started(&one),
            None,
            "one step, nothing owed: no record"
        );
        assert_eq!(j.files().len(), 1);
    })
    .await;
    assert!(
        journal.files().is_empty(),
        "the request ended: its plan is gone"
    );
}

#[test]
fn a_plan_whose_writer_let_go_is_taken_once_with_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let record = PlanRecord {
        owner: Owner::this_process(),
        started: "2026-12-06T00:00:00Z".into(),
        meta: meta(),
        create_key: None,
        steps: Vec::new(),
    };
    let mut file = journal.create(&record).unwrap();
    file.append(&Event::Sent { step: 0 }).unwrap();
    let path = file.path.clone();
    // a crash mid-line leaves half an event
    file.file.write_all(b"{\"event\":\"do").unwrap();
    drop(file);
    let claimed = Claimed::take(&path).unwrap().expect("no one holds it");
    assert_eq!(claimed.events, vec![Event::Sent { step: 0 }]);
    assert!(
        Claimed::take(&path).unwrap().is_none(),
        "a second recovery does not take it too"
    );
    claimed.remove().unwrap();
    assert!(journal.files().is_empty());
}

#[test]
fn an_add_is_flushed_when_done_only_when_it_set_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let add = |password| StepRecord {
        label: "add".into(),
        op: OpRecord::Add {
            dn: "uid=a,ou=people,dc=example,dc=org".into(),
            attributes: vec!["uid".into()],
            password,
        },
        undo: UndoRecord::Nothing,
    };
    let record = PlanRecord {
        owner: Owner::this_process(),
        started: "2026-12-07T00:00:00Z".into(),
        meta: meta(),
        create_key: None,
        steps: vec![add(true), add(false)],
    };
    let file = journal.create(&record).unwrap();
    let done = |step| Event::Done {
        step,
        swept: Vec::new(),
    };
    assert!(
        file.must_flush(&done(0)),
        "its password cannot be read back"
    );
    assert!(!file.must_flush(&done(1)), "recovery reads its entry back");
    assert!(file.must_flush(&Event::Sent { step: 1 }));
    assert!(!file.must_flush(&Event::Finished));
}
