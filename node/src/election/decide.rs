//! The rules of an election round, as a pure function of what ZooKeeper showed.
//!
//! [`decide`] takes a [`RoundView`] (the `leader` node, this head's exclusion, the eligible
//! candidates, this head's age) and the fixed [`Rules`] of this head, and says what to do as a
//! [`Decision`]. It does no I/O and reads no clock, so every rule can be tested without
//! ZooKeeper; the round in [`super`] reads what the decision needs and carries it out.
//!
//! The round reads only what can change the decision: the exclusion with a leader present only
//! when [`Rules::would_preempt`] that leader, and the candidates only when no leader exists and
//! this head is not excluded. Whatever it skipped, `decide` does not look at.

use std::time::Duration;

use crate::ids::ServerId;
use crate::zk::records::{HeadRecord, LeaderRecord};

/// What a head brings to every round: its id and its configuration.
#[derive(Clone, Debug)]
pub struct Rules {
    pub me: ServerId,
    /// A lower id displaces a higher-id leader instead of standing by.
    pub preempt: bool,
    /// How long the lowest head waits at a cold start for lower ids to register.
    pub startup_grace: Duration,
    /// How long a lower candidate gets to claim before the others claim out of order.
    pub session_timeout: Duration,
}

/// Whose session made the `leader` node, as far as this head can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The record names this head's current session: a lost claim reply or a connection blip.
    CurrentSession,
    /// The node's ephemeral owner is a session this head held before and gave up as expired.
    OldSession,
    /// Any other session.
    Other,
}

/// The `leader` node as read in this round.
#[derive(Clone, Debug)]
pub struct LeaderSeen {
    pub record: LeaderRecord,
    /// The node's data version; a preemption deletes it at exactly this version.
    pub version: i32,
    pub owner: Owner,
}

/// What one round read from ZooKeeper, and this head's state at the time.
#[derive(Clone, Debug)]
pub struct RoundView {
    pub leader: Option<LeaderSeen>,
    /// `excluded/<me>` exists. Read with no leader, or when this head would preempt the leader;
    /// `false` when not read.
    pub excluded: bool,
    /// Heads that may lead (see [`eligible`]); read only with no leader and no exclusion.
    pub candidates: Vec<ServerId>,
    /// Time since this head first registered.
    pub age: Duration,
    /// This head has seen a leader (any epoch) since it started.
    pub seen_leader: bool,
    /// The lowest candidate did not claim within the session timeout.
    pub force_claim: bool,
}

/// What the round does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The leader node is this head's, from its current session: lead with its epoch.
    Resume,
    /// The leader node is this head's, from a session it gave up: delete it and look again.
    RemoveOwnStaleLeader,
    /// Displace a higher-id leader: delete its node at `displace`, bump the epoch, create ours.
    Preempt { displace: i32 },
    /// Stand by under this leader until its node changes.
    Follow(ServerId),
    /// Excluded by a monitor: do not stand until the exclusion is lifted.
    StandAsideExcluded,
    /// Lowest at a cold start: give lower ids this much longer to register.
    WaitGrace(Duration),
    /// Claim leadership. `forced`: out of id order, because the lowest did not claim in time.
    Claim { forced: bool },
    /// A lower id should claim; if none has after `timeout`, claim anyway when
    /// `claim_on_timeout`.
    WaitForLower {
        timeout: Duration,
        claim_on_timeout: bool,
    },
}

impl Rules {
    /// Whether this head would displace `leader` were it not excluded. The round checks the
    /// exclusion only then, so that a standby does not read it on every leader change.
    pub fn would_preempt(&self, leader: &LeaderSeen) -> bool {
        self.preempt && leader.owner != Owner::CurrentSession && self.me < leader.record.server_id
    }
}

/// The rules of one round; see the module docs and `docs/election.md`.
pub fn decide(view: &RoundView, rules: &Rules) -> Decision {
    if let Some(leader) = &view.leader {
        return match leader.owner {
            Owner::CurrentSession => Decision::Resume,
            // Ending our dead leadership now rather than leaving the grid leaderless until the
            // server expires that session too.
            Owner::OldSession if leader.record.server_id == rules.me => {
                Decision::RemoveOwnStaleLeader
            }
            // Sticky unless `preempt`; an excluded head never preempts.
            _ if rules.would_preempt(leader) && !view.excluded => Decision::Preempt {
                displace: leader.version,
            },
            _ => Decision::Follow(leader.record.server_id.clone()),
        };
    }
    if view.excluded {
        return Decision::StandAsideExcluded;
    }
    if view.candidates.iter().min() == Some(&rules.me) {
        // Heads of a grid usually start together: give lower ids a moment to register so that
        // the lowest one leads after a cold start, not merely the fastest. Only at a cold start:
        // once this head has seen a leader, a failover never waits.
        if view.age < rules.startup_grace && !view.seen_leader {
            return Decision::WaitGrace(rules.startup_grace - view.age);
        }
        return Decision::Claim { forced: false };
    }
    if view.force_claim {
        return Decision::Claim { forced: true };
    }
    Decision::WaitForLower {
        timeout: rules.session_timeout,
        claim_on_timeout: true,
    }
}

/// Registered names whose registration is worth reading: valid ids without an exclusion.
pub fn standing(names: Vec<String>, excluded: &[String]) -> Vec<ServerId> {
    names
        .into_iter()
        .filter(|n| !excluded.contains(n))
        .filter_map(|n| ServerId::new(n).ok())
        .collect()
}

/// A head registration as read.
#[derive(Clone, Debug)]
pub enum Registration {
    Record(HeadRecord),
    /// Deleted between listing and reading.
    Gone,
    /// Not a head record; ignored rather than blocking the election.
    Unreadable,
}

/// Heads that may lead, lowest first: registered by the head itself (a monitor's hand-made
/// entry has no FileGrid process behind it) and readable.
pub fn eligible(registrations: Vec<(ServerId, Registration)>) -> Vec<ServerId> {
    let mut ids: Vec<ServerId> = registrations
        .into_iter()
        .filter_map(|(id, reg)| match reg {
            Registration::Record(rec) if rec.registered_by.is_none() => Some(id),
            _ => None,
        })
        .collect();
    ids.sort();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zk::records::RECORD_VERSION;

    const GRACE: Duration = Duration::from_secs(1);
    const SESSION: Duration = Duration::from_secs(6);

    fn id(s: &str) -> ServerId {
        ServerId::new(s).unwrap()
    }

    fn rules(me: &str) -> Rules {
        Rules {
            me: id(me),
            preempt: false,
            startup_grace: GRACE,
            session_timeout: SESSION,
        }
    }

    fn preempting(me: &str) -> Rules {
        Rules {
            preempt: true,
            ..rules(me)
        }
    }

    fn leader(server: &str, owner: Owner) -> LeaderSeen {
        LeaderSeen {
            record: LeaderRecord {
                v: RECORD_VERSION,
                server_id: id(server),
                host: "127.0.0.1".into(),
                api_port: 8080,
                epoch: 3,
                elected_at: 0,
                session_id: "0x1".into(),
                tls: false,
                s3_port: None,
            },
            version: 7,
            owner,
        }
    }

    /// No leader, not excluded, past the grace, a leader seen before: only the order counts.
    fn no_leader(candidates: &[&str]) -> RoundView {
        RoundView {
            leader: None,
            excluded: false,
            candidates: candidates.iter().map(|c| id(c)).collect(),
            age: Duration::from_secs(60),
            seen_leader: true,
            force_claim: false,
        }
    }

    fn with_leader(l: LeaderSeen) -> RoundView {
        RoundView {
            leader: Some(l),
            ..no_leader(&[])
        }
    }

    fn cold(candidates: &[&str], age: Duration) -> RoundView {
        RoundView {
            age,
            seen_leader: false,
            ..no_leader(candidates)
        }
    }

    fn head(server: &str, registered_by: Option<&str>) -> Registration {
        Registration::Record(HeadRecord {
            v: RECORD_VERSION,
            id: id(server),
            host: "127.0.0.1".into(),
            api_port: 8080,
            metrics_port: None,
            version: "test".into(),
            started_at: 0,
            registered_by: registered_by.map(Into::into),
            tls: false,
            s3_port: None,
        })
    }

    const CLAIM: Decision = Decision::Claim { forced: false };
    const WAIT_FOR_LOWER: Decision = Decision::WaitForLower {
        timeout: SESSION,
        claim_on_timeout: true,
    };

    #[test]
    fn lowest_eligible_id_claims_in_natural_order() {
        let view = no_leader(&["head_server_10", "head_server_2", "head_server_3"]);
        assert_eq!(decide(&view, &rules("head_server_2")), CLAIM);
        assert_eq!(decide(&view, &rules("head_server_10")), WAIT_FOR_LOWER);
        assert_eq!(decide(&view, &rules("head_server_3")), WAIT_FOR_LOWER);
    }

    #[test]
    fn a_head_missing_from_the_candidates_does_not_claim() {
        // Lower than every candidate, but not eligible itself (e.g. unreadable registration).
        let view = no_leader(&["head_server_2"]);
        assert_eq!(decide(&view, &rules("head_server_1")), WAIT_FOR_LOWER);
        assert_eq!(
            decide(&no_leader(&[]), &rules("head_server_1")),
            WAIT_FOR_LOWER
        );
    }

    #[test]
    fn a_lower_id_follows_a_higher_leader_without_preempt() {
        let view = with_leader(leader("head_server_10", Owner::Other));
        assert_eq!(
            decide(&view, &rules("head_server_2")),
            Decision::Follow(id("head_server_10"))
        );
    }

    #[test]
    fn a_higher_id_follows_the_leader() {
        let view = with_leader(leader("head_server_2", Owner::Other));
        assert_eq!(
            decide(&view, &rules("head_server_10")),
            Decision::Follow(id("head_server_2"))
        );
    }

    #[test]
    fn preempt_claims_from_a_higher_leader_at_its_version() {
        let view = with_leader(leader("head_server_10", Owner::Other));
        assert_eq!(
            decide(&view, &preempting("head_server_2")),
            Decision::Preempt { displace: 7 }
        );
    }

    #[test]
    fn preempt_does_not_displace_a_lower_leader() {
        let view = with_leader(leader("head_server_2", Owner::Other));
        let me = preempting("head_server_10");
        assert!(!me.would_preempt(view.leader.as_ref().unwrap()));
        assert_eq!(decide(&view, &me), Decision::Follow(id("head_server_2")));
    }

    #[test]
    fn an_excluded_head_does_not_preempt() {
        let mut view = with_leader(leader("head_server_10", Owner::Other));
        view.excluded = true;
        assert_eq!(
            decide(&view, &preempting("head_server_2")),
            Decision::Follow(id("head_server_10"))
        );
    }

    #[test]
    fn an_excluded_head_never_claims_even_when_lowest() {
        let mut view = no_leader(&["head_server_1", "head_server_2"]);
        view.excluded = true;
        view.force_claim = true;
        assert_eq!(
            decide(&view, &rules("head_server_1")),
            Decision::StandAsideExcluded
        );
        let mut cold = cold(&["head_server_1"], Duration::ZERO);
        cold.excluded = true;
        assert_eq!(
            decide(&cold, &preempting("head_server_1")),
            Decision::StandAsideExcluded
        );
    }

    #[test]
    fn startup_grace_waits_for_the_rest_of_the_grace_at_a_cold_start() {
        let me = rules("head_server_2");
        let young = cold(
            &["head_server_2", "head_server_3"],
            Duration::from_millis(300),
        );
        assert_eq!(
            decide(&young, &me),
            Decision::WaitGrace(Duration::from_millis(700))
        );
        let old = cold(&["head_server_2", "head_server_3"], GRACE);
        assert_eq!(decide(&old, &me), CLAIM);
    }

    #[test]
    fn startup_grace_is_skipped_once_a_leader_was_seen() {
        let mut view = cold(&["head_server_2"], Duration::from_millis(300));
        view.seen_leader = true;
        assert_eq!(decide(&view, &rules("head_server_2")), CLAIM);
    }

    #[test]
    fn startup_grace_applies_only_to_the_lowest() {
        let view = cold(&["head_server_2", "head_server_3"], Duration::ZERO);
        assert_eq!(decide(&view, &rules("head_server_3")), WAIT_FOR_LOWER);
    }

    #[test]
    fn own_leader_node_of_an_old_session_is_removed() {
        let view = with_leader(leader("head_server_2", Owner::OldSession));
        // With or without preempt: the node is dead, there is nothing to follow or displace.
        assert_eq!(
            decide(&view, &rules("head_server_2")),
            Decision::RemoveOwnStaleLeader
        );
        assert_eq!(
            decide(&view, &preempting("head_server_2")),
            Decision::RemoveOwnStaleLeader
        );
    }

    #[test]
    fn an_old_session_node_naming_another_head_is_followed() {
        let view = with_leader(leader("head_server_3", Owner::OldSession));
        assert_eq!(
            decide(&view, &rules("head_server_2")),
            Decision::Follow(id("head_server_3"))
        );
    }

    #[test]
    fn own_leader_node_of_the_current_session_is_resumed() {
        let mut view = with_leader(leader("head_server_2", Owner::CurrentSession));
        view.excluded = true;
        assert_eq!(decide(&view, &rules("head_server_2")), Decision::Resume);
        assert_eq!(
            decide(&view, &preempting("head_server_2")),
            Decision::Resume
        );
    }

    #[test]
    fn force_claim_claims_out_of_order_but_not_while_a_leader_exists() {
        let mut view = no_leader(&["head_server_1", "head_server_2"]);
        view.force_claim = true;
        assert_eq!(
            decide(&view, &rules("head_server_2")),
            Decision::Claim { forced: true }
        );
        let mut led = with_leader(leader("head_server_1", Owner::Other));
        led.force_claim = true;
        assert_eq!(
            decide(&led, &rules("head_server_2")),
            Decision::Follow(id("head_server_1"))
        );
    }

    #[test]
    fn force_claim_is_not_reported_for_an_in_order_claim() {
        let mut view = no_leader(&["head_server_1", "head_server_2"]);
        view.force_claim = true;
        assert_eq!(decide(&view, &rules("head_server_1")), CLAIM);
    }

    /// The round skips reading the exclusion when a leader exists and this head would not
    /// preempt it; that is only safe if the exclusion cannot change the decision then.
    #[test]
    fn the_exclusion_is_consulted_with_a_leader_only_when_preempting() {
        for owner in [Owner::CurrentSession, Owner::OldSession, Owner::Other] {
            for l in ["head_server_1", "head_server_2", "head_server_10"] {
                for r in [rules("head_server_2"), preempting("head_server_2")] {
                    let seen = leader(l, owner);
                    if r.would_preempt(&seen) {
                        continue;
                    }
                    let mut view = with_leader(seen);
                    let not_excluded = decide(&view, &r);
                    view.excluded = true;
                    assert_eq!(decide(&view, &r), not_excluded, "{owner:?} {l}");
                }
            }
        }
    }

    #[test]
    fn excluded_and_invalid_names_are_not_read() {
        let names = vec![
            "head_server_1".to_string(),
            "head_server_2".to_string(),
            "not valid!".to_string(),
            "head_server_10".to_string(),
        ];
        let read = standing(names, &["head_server_1".to_string()]);
        assert_eq!(read, vec![id("head_server_2"), id("head_server_10")]);
    }

    #[test]
    fn hand_registered_gone_and_unreadable_heads_are_not_candidates() {
        let regs = vec![
            (id("head_server_10"), head("head_server_10", None)),
            (
                id("head_server_1"),
                head("head_server_1", Some("monitor_1")),
            ),
            (id("head_server_3"), Registration::Gone),
            (id("head_server_0"), Registration::Unreadable),
            (id("head_server_2"), head("head_server_2", None)),
        ];
        assert_eq!(
            eligible(regs),
            vec![id("head_server_2"), id("head_server_10")]
        );
    }

    #[test]
    fn a_hand_registered_lower_head_does_not_hold_up_the_claim() {
        let regs = vec![
            (
                id("head_server_1"),
                head("head_server_1", Some("monitor_1")),
            ),
            (id("head_server_2"), head("head_server_2", None)),
        ];
        let view = RoundView {
            candidates: eligible(regs),
            ..no_leader(&[])
        };
        assert_eq!(decide(&view, &rules("head_server_2")), CLAIM);
    }
}
