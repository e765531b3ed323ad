//! A cluster server's life after it was drained, on real grids (ZooKeeper, heads and cluster
//! servers as processes): a drained server that leaves is forgotten and its id can serve
//! again; a drained id that comes back with a new, empty volume is live at once; one that
//! comes back with its old volume stays drained.

use std::time::Duration;

use filegrid_proto::head::{RepairReport, ServerState, ServerView};
use filegrid_testkit::{Grid, GridOptions, wait_until_sync};
use serde::de::DeserializeOwned;

mod common;
use common::{admin_http, metric, node_bin, random};

const CHUNK: usize = 256 * 1024;

fn get_json<T: DeserializeOwned>(url: &str) -> Option<T> {
    admin_http().get(url).send().ok()?.json().ok()
}

fn put(base: &str, path: &str, data: Vec<u8>) {
    let r = admin_http()
        .put(format!("{base}/v1/files/{path}"))
        .body(data)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{path}");
}

/// The leader's view of server `id`, if it lists it.
fn server(base: &str, id: &str) -> Option<ServerView> {
    let list: Vec<ServerView> = get_json(&format!("{base}/v1/cluster"))?;
    list.into_iter().find(|s| s.id.as_str() == id)
}

fn wait_state(base: &str, id: &str, state: ServerState, within: Duration) {
    wait_until_sync(within, &format!("{id} {}", state.as_str()), || {
        (server(base, id)?.state == state).then_some(())
    });
}

/// The leader's count of registered cluster servers (`filegrid_cluster_servers_live`).
fn registered(base: &str) -> Option<u64> {
    let text = admin_http()
        .get(format!("{base}/metrics"))
        .send()
        .ok()?
        .text()
        .ok()?;
    metric(&text, "filegrid_cluster_servers_live").map(|v| v as u64)
}

/// A 4-server grid with files on it, and its last server decommissioned and drained.
fn grid_with_a_drained_server(dead_after: &str) -> (Grid, String, String) {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            cluster_servers: 4,
            dead_after: dead_after.into(),
            ..Default::default()
        },
    );
    let base = grid.leader_url(Duration::from_secs(30));
    grid.wait_cluster_live(4, Duration::from_secs(30));
    for i in 0..4 {
        put(&base, &format!("life/f{i}"), random(CHUNK * 2 + i));
    }
    let target = grid.cluster[3].id.clone();
    let r = admin_http()
        .post(format!("{base}/v1/cluster/{target}/decommission"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    wait_state(
        &base,
        &target,
        ServerState::Drained,
        Duration::from_secs(60),
    );
    (grid, base, target)
}

/// Stops server 3 and, with `wipe`, deletes its volume.
fn stop_last(grid: &mut Grid, base: &str, wipe: bool) {
    let c = &mut grid.cluster[3];
    c.proc.terminate();
    assert!(c.proc.wait_exit(Duration::from_secs(30)).is_some());
    if wipe {
        std::fs::remove_dir_all(&c.data_dir).unwrap();
    }
    wait_until_sync(
        Duration::from_secs(30),
        "its registration to vanish",
        || (registered(base)? == 3).then_some(()),
    );
}

/// New uploads reach `id`: its chunk count grows.
fn gets_chunks(base: &str, id: &str) {
    for i in 0..6 {
        put(base, &format!("life/after{i}"), random(CHUNK * 2 + i));
    }
    wait_until_sync(Duration::from_secs(30), &format!("chunks on {id}"), || {
        (server(base, id)?.chunks > 0).then_some(())
    });
}

/// 4 -> 3 -> 4 by hand: the drained server goes away for longer than `dead_after` and is
/// forgotten; a new server under the same id (a StatefulSet ordinal used again) is live and
/// gets chunks.
#[test]
fn a_drained_server_that_left_is_forgotten_and_its_id_serves_again() {
    let (mut grid, base, target) = grid_with_a_drained_server("2s");
    stop_last(&mut grid, &base, true);
    wait_until_sync(
        Duration::from_secs(30),
        "the drained server to be forgotten",
        || server(&base, &target).is_none().then_some(()),
    );
    let id = target.clone();
    grid.start_cluster_server(&id);
    wait_state(&base, &target, ServerState::Live, Duration::from_secs(30));
    gets_chunks(&base, &target);
}

/// The drained id comes back before `dead_after`: with its old volume it stays drained; with
/// a new, empty one it is live again at once and gets chunks.
#[test]
fn a_drained_id_back_with_an_empty_volume_is_live_and_with_its_old_one_stays_drained() {
    let (mut grid, base, target) = grid_with_a_drained_server("5m");
    // Its old volume: the drained copies are still there (orphans wait out their grace).
    stop_last(&mut grid, &base, false);
    grid.restart_cluster_server(3);
    wait_until_sync(Duration::from_secs(30), "it to register again", || {
        (registered(&base)? == 4).then_some(())
    });
    // A repair pass that saw it registered again (the registration change wakes one).
    let seen = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    wait_until_sync(
        Duration::from_secs(30),
        "a repair pass after it came back",
        || {
            let r: RepairReport = get_json(&format!("{base}/v1/repair"))?;
            (r.finished_at > seen).then_some(())
        },
    );
    assert_eq!(
        server(&base, &target).map(|s| s.state),
        Some(ServerState::Drained),
        "back with chunks on its volume: still drained"
    );

    stop_last(&mut grid, &base, true);
    grid.restart_cluster_server(3);
    wait_state(&base, &target, ServerState::Live, Duration::from_secs(30));
    gets_chunks(&base, &target);
}
