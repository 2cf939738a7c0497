use super::*;

const A: &str = "10.0.0.1:6379";
const B: &str = "10.0.0.2:6379";
const C: &str = "10.0.0.3:6379";
const N: &str = "10.0.0.9:6379";

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn list(epoch: u64, master: &str, others: &[&str]) -> List {
    List::of(epoch, master, others.iter().copied())
}

#[test]
fn the_list_names_the_master_and_every_member_it_knows() {
    let l = list(4, A, &[B, C, A]);
    assert_eq!(l.members.iter().map(String::as_str).collect::<Vec<_>>(), [A, B, C]);
    assert_eq!(l.others().map(String::as_str).collect::<Vec<_>>(), [B, C]);
    assert_eq!(List::decode(&l.encode()).as_ref(), Some(&l));
    assert_eq!(List::decode(b""), None, "an empty znode: no list yet");
    let cases = [
        (4, A, &[B, C][..], true),
        (4, A, &[C, B, A][..], true),
        (4, A, &[B][..], false),
        (4, A, &[B, C, N][..], false),
        (5, A, &[B, C][..], false),
        (4, B, &[A, C][..], false),
    ];
    for (epoch, me, members, want) in cases {
        assert_eq!(
            l.is_of(epoch, me, members.iter().copied()),
            want,
            "{epoch} {me} {members:?}"
        );
    }
    assert!(!l.released().is_of(4, A, [B, C].into_iter()));
}

#[test]
fn a_member_grants_only_the_master_it_follows_at_that_epoch() {
    let ask = Ask {
        master: A.into(),
        epoch: 5,
    };
    type Case<'a> = (Option<(&'a str, u64)>, u64, Result<(), Refusal>);
    let cases: [Case; 6] = [
        (Some((A, 5)), 5, Ok(())),
        (Some((A, 5)), 6, Err(Refusal::Newer(6))),
        (Some((A, 4)), 5, Err(Refusal::NotFollowing)),
        (Some((B, 5)), 5, Err(Refusal::NotFollowing)),
        (None, 5, Err(Refusal::NotFollowing)),
        (None, 0, Err(Refusal::NotFollowing)),
    ];
    for (followed, seen, want) in cases {
        assert_eq!(answer(&ask, followed, seen, None), want, "{followed:?} seen {seen}");
    }
    let sealed = [
        (Some(4), Ok(())),
        (Some(5), Err(Refusal::Sealed)),
        (Some(6), Err(Refusal::Sealed)),
    ];
    for (sealed, want) in sealed {
        assert_eq!(answer(&ask, Some((A, 5)), 5, sealed), want, "sealed {sealed:?}");
    }
}

#[test]
fn who_may_stand() {
    let t = Instant::now();
    let grant = ms(2000);
    let mut fresh = Grants::default();
    fresh.started(t, grant);
    let mut granted = fresh.clone();
    granted.give(t + ms(2500), grant);
    let l5 = list(5, A, &[B]);
    let alone = list(5, A, &[]);
    let released = l5.released();
    #[rustfmt::skip]
    type Case<'a> = (&'a str, &'a Grants, Option<&'a List>, u64, Duration, Option<Bar>);
    let cases: [Case; 15] = [
        (B, &fresh, Some(&l5), 5, ms(0), Some(Bar::Starting)),
        (B, &fresh, Some(&l5), 5, ms(1999), Some(Bar::Starting)),
        (B, &fresh, Some(&l5), 5, ms(2000), None),
        (B, &granted, Some(&l5), 5, ms(4499), Some(Bar::Granted)),
        (B, &granted, Some(&l5), 5, ms(4500), None),
        (N, &fresh, Some(&l5), 5, ms(3000), Some(Bar::NotListed)),
        (N, &fresh, Some(&l5), 4, ms(3000), Some(Bar::NotListed)),
        // A newer epoch: the list's master has been replaced.
        (N, &fresh, Some(&l5), 6, ms(3000), None),
        (N, &fresh, None, 5, ms(3000), None),
        // A master alone on its list has no failsafe.
        (N, &fresh, Some(&alone), 5, ms(3000), None),
        (N, &fresh, Some(&released), 5, ms(3000), None),
        // Starting bars only while a list is in force: with none, no master
        // writes on grants, and a new group elects at once.
        (N, &Grants::default(), None, 0, ms(0), None),
        (B, &fresh, None, 5, ms(0), None),
        (B, &fresh, Some(&l5), 6, ms(0), None),
        (B, &fresh, Some(&released), 5, ms(0), None),
    ];
    for (me, grants, list, seen, at, want) in cases {
        assert_eq!(bar(me, grants, list, seen, t + at), want, "{me} seen {seen} at {at:?}");
    }
}

#[test]
fn asking_begins_a_third_of_the_timeout_after_the_last_confirmation() {
    let t = Instant::now();
    let timeout = ms(3000);
    let cases = [
        (Some(t), None, ms(999), false),
        (Some(t), None, ms(1000), true),
        (None, None, ms(0), true),
        (Some(t), Some(t + ms(1000)), ms(1499), false),
        (Some(t), Some(t + ms(1000)), ms(1500), true),
    ];
    for (confirmed, last, at, want) in cases {
        assert_eq!(asking_due(confirmed, last, t + at, timeout), want, "{at:?}");
    }
}

/// The master's lease: from the sending of a round, only once every other
/// listed member granted it.
#[test]
fn a_round_granted_by_every_other_member_extends_the_lease() {
    let t = Instant::now();
    let grant = ms(3000);
    type Step = (&'static str, u64, bool, Option<u64>);
    let cases: [(&[Step], bool); 5] = [
        (&[(B, 0, true, None), (C, 0, true, Some(2000))], true),
        (&[(B, 0, true, None)], false),
        (&[(B, 0, true, None), (C, 0, false, None), (C, 0, true, None)], false),
        (&[(B, 0, true, None), (B, 0, true, None)], false),
        // An answer to a round never sent counts for nothing.
        (&[(B, 7, true, None), (C, 7, true, None)], false),
    ];
    for (steps, live) in cases {
        let mut claim = Claim::new(&list(3, A, &[B, C]));
        assert_eq!(claim.ask(t, grant), [B, C]);
        for (from, sent, granted, end) in steps {
            let got = claim.answered(from, t + ms(*sent), *granted, grant);
            assert_eq!(got, end.map(|e| t + ms(e)), "{steps:?}");
        }
        assert_eq!(claim.live(t + ms(1999)), live, "{steps:?}");
        assert!(!claim.live(t + ms(2000)), "{steps:?}");
    }
}

#[test]
fn a_master_alone_on_its_list_has_no_failsafe() {
    let t = Instant::now();
    let mut claim = Claim::new(&list(3, A, &[]));
    assert!(claim.ask(t, ms(3000)).is_empty());
    assert!(!claim.live(t));
}

#[test]
fn while_a_rewrite_is_unconfirmed_both_lists_must_grant() {
    let t = Instant::now();
    let grant = ms(3000);
    let mut claim = Claim::new(&list(3, A, &[B]));
    claim.widen(&list(3, A, &[C]));
    assert_eq!(claim.ask(t, grant), [B, C]);
    assert_eq!(claim.answered(B, t, true, grant), None, "C may have read the new list");
    claim.confine(&list(3, A, &[B]));
    assert!(!claim.live(t), "only answers complete a round");
    assert_eq!(claim.ask(t + ms(1), grant), [B]);
    let mut claim = Claim::new(&list(3, A, &[B]));
    claim.widen(&list(3, A, &[C]));
    claim.ask(t, grant);
    assert_eq!(claim.answered(C, t, true, grant), None);
    claim.confine(&list(3, A, &[C]));
    assert!(!claim.live(t), "confining does not complete a round by itself");
    let end = claim.answered(B, t, true, grant);
    assert_eq!(end, Some(t + ms(2000)), "C, all the confirmed list names, granted");
}

/// Clock rates: a grant given no sooner than the ask was sent outlives the
/// master's lease even with the master's clock a fifth slower.
#[test]
fn the_grant_outlives_the_lease_it_proves() {
    let grant = ms(3000);
    let lease = lease_end(Instant::now(), grant) - Instant::now();
    assert!(lease.mul_f64(1.2) < grant.div_f64(1.2) + ms(1), "{lease:?}");
}

#[test]
fn a_listed_member_without_a_grant_releases_the_list_of_a_vacancy() {
    let t = Instant::now();
    let grant = ms(2000);
    let mut free = Grants::default();
    free.started(t, grant);
    let mut granted = free.clone();
    granted.give(t + ms(2500), grant);
    let l5 = list(5, A, &[B, C]);
    let released = l5.released();
    #[rustfmt::skip]
    let cases = [
        (B, &free, Some(&l5), 5, ms(2000), true),
        (B, &free, Some(&l5), 5, ms(1999), false),
        (B, &granted, Some(&l5), 5, ms(4499), false),
        (B, &granted, Some(&l5), 5, ms(4500), true),
        (A, &free, Some(&l5), 5, ms(3000), false),
        (N, &free, Some(&l5), 5, ms(3000), false),
        (B, &free, Some(&l5), 6, ms(3000), false),
        (B, &free, Some(&released), 5, ms(3000), false),
        (B, &free, None, 5, ms(3000), false),
    ];
    for (me, grants, list, seen, at, want) in cases {
        assert_eq!(
            to_release(me, grants, list, seen, t + at),
            want,
            "{me} seen {seen} at {at:?}"
        );
    }
}
