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

fn record() -> PlanRecord {
    PlanRecord {
        plan: None,
        owner: Owner::this_process(),
        started: "2026-12-06T00:00:00Z".into(),
        meta: meta(),
        create_key: None,
        steps: Vec::new(),
    }
}

/// The file's bytes up to its first NUL.
fn text(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[tokio::test]
async fn a_plan_is_held_by_its_request_and_its_file_freed_for_the_next_when_the_request_ends() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(Journal::open(dir.path()).unwrap());
    let j = journal.clone();
    scope(journal.clone(), meta(), async move {
        let n = plan_started(&plan());
        note(n, Event::Sent { step: 1 });
        let files = j.files();
        assert_eq!(files.len(), 1);
        assert!(
            Claimed::take(&files[0]).unwrap().is_none(),
            "a plan in progress is not taken"
        );
        assert!(text(&files[0]).contains("\"sent\""));
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
    let files = journal.files();
    assert_eq!(files.len(), 1, "the file is kept for the next plan");
    assert_eq!(text(&files[0]), "", "the request ended: its plan is gone");
    assert!(Claimed::take(&files[0]).unwrap().is_none(), "still held");

    scope(journal.clone(), meta(), async {
        plan_started(&plan());
    })
    .await;
    assert_eq!(journal.files(), files, "the next plan reuses it");
}

#[test]
fn a_plan_whose_writer_let_go_is_taken_once_with_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let mut file = journal.create(record(), true).unwrap();
    file.append(&Event::Sent { step: 0 }).unwrap();
    let path = file.slot.path.clone();
    // a crash mid-line leaves half an event
    file.slot
        .file
        .write_all_at(b"{\"plan\":0,\"event\":\"do", file.at)
        .unwrap();
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
fn a_reused_file_yields_only_its_current_plans_lines() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let mut first = journal.create(record(), true).unwrap();
    for step in 0..3 {
        first.append(&Event::Sent { step }).unwrap();
        first
            .append(&Event::Done {
                step,
                swept: Vec::new(),
            })
            .unwrap();
    }
    let path = first.slot.path.clone();
    journal.release(first);
    let mut second = journal.create(record(), true).unwrap();
    assert_eq!(second.slot.path, path);
    second.append(&Event::Failed { step: 0 }).unwrap();
    let number = second.number;
    // the bridge is killed: neither the plan nor the file is let go by it
    drop(second);
    drop(journal);
    let claimed = Claimed::take(&path).unwrap().expect("no one holds it");
    assert_eq!(claimed.record.plan, Some(number));
    assert_eq!(
        claimed.events,
        vec![Event::Failed { step: 0 }],
        "the first plan's lines after it are not the second's"
    );
}

#[test]
fn a_free_file_a_stopped_bridge_left_is_removed_not_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let file = journal.create(record(), true).unwrap();
    let path = file.slot.path.clone();
    journal.release(file);
    drop(journal);
    assert!(Claimed::take(&path).unwrap().is_none());
    assert!(!path.exists(), "removed");
}

#[test]
fn a_plan_file_of_the_format_before_reuse_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("host-1-2-3.plan");
    let mut text = serde_json::to_string(&record()).unwrap();
    text.push_str("\n{\"event\":\"sent\",\"step\":1}\n{\"event\":\"finished\"}\n");
    std::fs::write(&path, text).unwrap();
    let claimed = Claimed::take(&path).unwrap().expect("no one holds it");
    assert_eq!(claimed.record.plan, None);
    assert_eq!(
        claimed.events,
        vec![Event::Sent { step: 1 }, Event::Finished]
    );
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
        steps: vec![add(true), add(false)],
        ..record()
    };
    let file = journal.create(record, true).unwrap();
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

#[test]
fn a_sweep_with_nothing_to_undo_is_not_flushed_as_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let step = |label: &str, undo| StepRecord {
        label: label.into(),
        op: OpRecord::Sweep {
            base: "ou=groups,dc=example,dc=org".into(),
            attr: "member".into(),
            members: vec!["uid=a,ou=people,dc=example,dc=org".into()],
            to: None,
        },
        undo,
    };
    let record = PlanRecord {
        steps: vec![
            step("leave_groups", UndoRecord::Recorded),
            step("catch_up", UndoRecord::Nothing),
        ],
        ..record()
    };
    let file = journal.create(record, true).unwrap();
    assert!(
        file.must_flush(&Event::Sent { step: 0 }),
        "what it changes is undone: recovery must know it began"
    );
    assert!(
        !file.must_flush(&Event::Sent { step: 1 }),
        "replayed, never read back: the step before it stands for it"
    );
    let swept = Event::Done {
        step: 1,
        swept: vec![(
            "cn=g,ou=groups,dc=example,dc=org".into(),
            ValuesRecord {
                attr: "member".into(),
                adds: vec!["uid=a,ou=people,dc=example,dc=org".into()],
                deletes: vec![],
            },
        )],
    };
    assert!(file.must_flush(&swept), "what it changed still is");
}

#[test]
fn a_plan_whose_first_step_is_a_stale_sweep_is_flushed_with_its_next_step() {
    let stale = Step::new(
        StepKind::Stale,
        Op::Delete {
            dn: Dn::new("uid=a,ou=people,dc=example,dc=org"),
            assertion: None,
        },
        Undo::Nothing,
    );
    let mut create = Plan::new();
    create.push(stale.clone());
    create.steps.extend(plan().steps);
    assert!(!flushed_before_first_step(&create));
    assert!(flushed_before_first_step(&plan()), "a delete: at once");
    let mut undone = Plan::new();
    undone.push(Step {
        undo: Undo::Irreversible,
        ..stale
    });
    assert!(
        flushed_before_first_step(&undone),
        "a sweep that would need undoing is recorded before it"
    );
}

#[test]
fn events_recovery_can_do_without_wait_for_the_next_flushed_one_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let mut file = journal.create(record(), true).unwrap();
    let done = |step| Event::Done {
        step,
        swept: Vec::new(),
    };
    file.append(&Event::Sent { step: 0 }).unwrap();
    file.append(&done(0)).unwrap();
    file.append(&Event::Sent { step: 1 }).unwrap();
    file.append(&done(1)).unwrap();
    file.append(&Event::Finished).unwrap();
    let path = file.slot.path.clone();
    // killed before the request let the plan go: what was held is lost, as a host crash
    // loses lines not flushed
    drop(file);
    let claimed = Claimed::take(&path).unwrap().expect("no one holds it");
    assert_eq!(
        claimed.events,
        vec![Event::Sent { step: 0 }, done(0), Event::Sent { step: 1 }],
        "the first done went to disk with the send after it; the last and the end did not"
    );
}

#[test]
fn a_plan_that_ends_drops_what_it_held_and_leaves_its_file_free() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let mut file = journal.create(record(), true).unwrap();
    file.append(&Event::Sent { step: 0 }).unwrap();
    file.append(&Event::Finished).unwrap();
    let path = file.slot.path.clone();
    journal.release(file);
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        !String::from_utf8_lossy(&bytes).contains("finished"),
        "the end was never written"
    );
    drop(journal);
    assert!(
        Claimed::take(&path).unwrap().is_none(),
        "free: nothing to recover"
    );
}
