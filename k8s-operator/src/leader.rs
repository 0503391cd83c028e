//! Leader election: only the replica holding the `Lease` reconciles (a
//! second replica waits, ready to take over). The lease is kept by
//! `kube-lease-manager`; [`while_leading`] runs the controllers only while
//! it is held, stops them the moment it is lost, and says so, so that the
//! process exits and Kubernetes restarts it to campaign again, as
//! controller-runtime's operators do.

use std::future::Future;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How leading ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Led {
    /// Shut down by a signal (led or not): the lease is released.
    ShutDown,
    /// The lease was lost (or its manager stopped) while leading or waiting.
    LostLease,
}

/// Waits until `leader` says this process leads, then runs `work` with a
/// token cancelled on shutdown or when the lease is lost; `work` must
/// return once its token is cancelled.
pub async fn while_leading<F, Fut>(mut leader: watch::Receiver<bool>, shutdown: CancellationToken, work: F) -> Led
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    while !*leader.borrow_and_update() {
        tokio::select! {
            () = shutdown.cancelled() => return Led::ShutDown,
            changed = leader.changed() => if changed.is_err() { return Led::LostLease },
        }
    }
    tracing::info!("leading: reconciling");
    let stop = shutdown.child_token();
    let work = work(stop.clone());
    tokio::pin!(work);
    let lost = async {
        while leader.changed().await.is_ok() {
            if !*leader.borrow_and_update() {
                return;
            }
        }
    };
    tokio::select! {
        () = &mut work => Led::ShutDown,
        () = lost => {
            tracing::warn!("lease lost: stopping the controllers");
            stop.cancel();
            work.await;
            if shutdown.is_cancelled() { Led::ShutDown } else { Led::LostLease }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The controllers stand-in: says when it starts, runs until cancelled.
    fn work(started: tokio::sync::mpsc::UnboundedSender<()>) -> impl FnOnce(CancellationToken) -> Fut {
        move |stop| {
            Box::pin(async move {
                started.send(()).expect("test listening");
                stop.cancelled().await;
            })
        }
    }

    type Fut = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

    // One thread: the gate runs exactly until it waits whenever the test yields.
    #[tokio::test(flavor = "current_thread")]
    async fn the_controllers_run_only_while_the_lease_is_held() {
        let (lease, leader) = watch::channel(false);
        let (started, mut starts) = tokio::sync::mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let gate = tokio::spawn(while_leading(leader, shutdown.clone(), work(started)));
        tokio::task::yield_now().await;
        assert!(starts.try_recv().is_err(), "not started before leading");
        lease.send(true).expect("gate listening");
        starts.recv().await.expect("started once leading");
        lease.send(false).expect("gate listening");
        assert_eq!(gate.await.expect("gate"), Led::LostLease, "stopped when the lease is lost");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_signal_stops_the_controllers_or_the_wait() {
        let (lease, leader) = watch::channel(true);
        let (started, mut starts) = tokio::sync::mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let gate = tokio::spawn(while_leading(leader, shutdown.clone(), work(started)));
        starts.recv().await.expect("leading at once");
        shutdown.cancel();
        assert_eq!(gate.await.expect("gate"), Led::ShutDown);
        drop(lease);

        let (_lease, leader) = watch::channel(false);
        let (started, mut starts) = tokio::sync::mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        assert_eq!(while_leading(leader, shutdown, work(started)).await, Led::ShutDown);
        assert!(starts.try_recv().is_err(), "never started");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_lease_manager_that_stops_while_waiting_is_a_lost_lease() {
        let (lease, leader) = watch::channel(false);
        let (started, _starts) = tokio::sync::mpsc::unbounded_channel();
        drop(lease);
        assert_eq!(while_leading(leader, CancellationToken::new(), work(started)).await, Led::LostLease);
    }
}
