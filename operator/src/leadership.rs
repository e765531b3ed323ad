//! The operator's own leadership. `kube-lease-manager` acquires and renews the Lease; this
//! module makes sure a replica stops acting before another one can take the Lease over: it
//! reads the Lease itself and steps down when it cannot confirm, in time, that it still holds
//! it (a renewal refused or never answered).

use std::time::{Duration, SystemTime};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use tracing::warn;

/// Lease term; another replica may take the Lease once it has not been renewed for this long.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// The holder renews this long before the term ends.
pub const LEASE_GRACE: Duration = Duration::from_secs(8);
/// How often the holder reads the Lease back.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// The holder stops acting this long before its term ends unless it has seen a renewal: time
/// enough to stop the controller before another replica may start.
pub const STEP_DOWN_MARGIN: Duration = Duration::from_secs(3);

/// Until when `identity` holds `lease`: the last renewal (or acquisition) plus the term.
/// `None` when another identity holds it, or it holds no usable times.
pub fn held_until(lease: &Lease, identity: &str) -> Option<SystemTime> {
    let spec = lease.spec.as_ref()?;
    if spec.holder_identity.as_deref() != Some(identity) {
        return None;
    }
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?;
    let secs = u64::try_from(spec.lease_duration_seconds?).ok()?;
    let renewed: SystemTime = renewed.0.into();
    renewed.checked_add(Duration::from_secs(secs))
}

/// Whether a holder whose term is known to last until `held_until` must stop acting at `now`.
pub fn must_step_down(held_until: Option<SystemTime>, now: SystemTime) -> bool {
    match held_until.and_then(|t| t.checked_sub(STEP_DOWN_MARGIN)) {
        Some(last_safe) => now >= last_safe,
        None => true,
    }
}

/// Why this replica stopped leading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepDown {
    /// Another identity holds the Lease, or it is gone.
    NotHolder,
    /// No renewal was seen before the term's end (the API refused or did not answer).
    NotRenewed,
}

/// Read the Lease every [`CHECK_INTERVAL`] while this replica leads; returns when it must
/// stop acting. A failed read keeps the last known term, which runs out on its own.
pub async fn guard(leases: Api<Lease>, name: String, identity: String) -> StepDown {
    let mut until: Option<SystemTime> = None;
    loop {
        match tokio::time::timeout(CHECK_INTERVAL, leases.get_opt(&name)).await {
            Ok(Ok(Some(lease))) => match held_until(&lease, &identity) {
                Some(t) => until = Some(t),
                None => return StepDown::NotHolder,
            },
            Ok(Ok(None)) => return StepDown::NotHolder,
            Ok(Err(e)) => warn!(error = %e, "cannot read the leader lease"),
            Err(_) => warn!("reading the leader lease timed out"),
        }
        if must_step_down(until, SystemTime::now()) {
            return StepDown::NotRenewed;
        }
        tokio::time::sleep(CHECK_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lease(holder: &str, renewed: SystemTime) -> Lease {
        let t = k8s_openapi::jiff::Timestamp::try_from(renewed).unwrap();
        serde_json::from_value(json!({
            "metadata": {"name": "l"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                     "renewTime": t.to_string()}
        }))
        .unwrap()
    }

    #[test]
    fn the_holder_steps_down_before_its_term_ends_without_a_renewal() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let l = lease("op-a", t0);
        let until = held_until(&l, "op-a");
        assert_eq!(until, Some(t0 + Duration::from_secs(15)));
        assert_eq!(held_until(&l, "op-b"), None);
        // Renewed (at the latest) 7 s into the term; without it, stop 3 s before the end.
        assert!(!must_step_down(until, t0 + Duration::from_secs(7)));
        assert!(!must_step_down(until, t0 + Duration::from_secs(11)));
        assert!(must_step_down(until, t0 + Duration::from_secs(12)));
        assert!(must_step_down(until, t0 + Duration::from_secs(20)));
        // Never confirmed: stop at once.
        assert!(must_step_down(None, t0));
        // The margin leaves time after the renewal is due.
        assert!(LEASE_DURATION - LEASE_GRACE + CHECK_INTERVAL < LEASE_DURATION - STEP_DOWN_MARGIN);
    }
}
