//! Verdict tests of membership changes through `BPF_PROG_TEST_RUN`: a dead
//! owner's clients are re-pinned among live nodes (by the userspace sweep, and by
//! the program itself for a pin the sweep missed), everyone else keeps their
//! owner, and a node that comes back only gets new clients.

use super::*;

/// The outer destination of a forwarded frame, or `None` when it was passed.
fn forwarded_to(plane: &DataPlane, frame: &[u8]) -> Option<[u8; 4]> {
    match run(plane, frame) {
        (XDP_TX, out) => Some([out[30], out[31], out[32], out[33]]),
        (XDP_PASS, out) => {
            assert_eq!(out, frame, "a passed frame is unchanged");
            None
        }
        (verdict, _) => panic!("unexpected verdict {verdict}"),
    }
}

/// Address of node slot `slot` in [`cluster`], or `None` for the local node a.
fn node_addr(slot: u32) -> Option<[u8; 4]> {
    (slot != 0).then(|| [10, 99, 0, slot as u8 + 1])
}

#[test]
fn a_dead_owner_moves_only_its_own_clients() {
    let cfg = cluster();
    let plane = load(&cfg);
    let (of_a, of_b, of_c) = (v4_client_owned_by(&cfg, 0), v4_client_owned_by(&cfg, 1), v4_client_owned_by(&cfg, 2));
    let key = |ip: [u8; 4]| ClientKey::v4(ip);
    let frame = |ip: [u8; 4]| ipv4_frame(ip, TCP, PORT, ACK);
    assert_eq!(forwarded_to(&plane, &frame(of_a)), None);
    assert_eq!(forwarded_to(&plane, &frame(of_b)), Some([10, 99, 0, 2]));
    assert_eq!(forwarded_to(&plane, &frame(of_c)), Some([10, 99, 0, 3]));
    let pins = |plane: &DataPlane| [of_a, of_b, of_c].map(|ip| plane.pinned_owner(&key(ip)));
    assert_eq!(pins(&plane), [Some(0), Some(1), Some(2)]);

    // c dies: its one client is re-pinned to its owner in the table without c.
    assert_eq!(plane.set_node_live("c", false).unwrap(), Some(1));
    let mut without_c = cfg.clone();
    without_c.nodes.retain(|n| n.name != "c");
    let next = Plan::new(&without_c, &[PORT], "").maglev[key(of_c).maglev_index() as usize];
    assert!(next < 2, "re-pinned to a live node, got slot {next}");
    assert_eq!(pins(&plane), [Some(0), Some(1), Some(next)]);
    assert_eq!(forwarded_to(&plane, &frame(of_c)), node_addr(next));
    assert_eq!(forwarded_to(&plane, &frame(of_a)), None, "a's client stays on a");
    assert_eq!(forwarded_to(&plane, &frame(of_b)), Some([10, 99, 0, 2]), "b's client stays on b");

    // A pin to the dead node that the sweep did not see (written behind its back):
    // the program itself re-selects a live owner and re-pins.
    let late = (0..=u16::MAX)
        .map(|i| [10, 8, (i >> 8) as u8, i as u8])
        .find(|ip| Plan::new(&without_c, &[PORT], "").maglev[key(*ip).maglev_index() as usize] == 1)
        .unwrap();
    plane.pin(&key(late), 2);
    assert_eq!(forwarded_to(&plane, &frame(late)), Some([10, 99, 0, 2]));
    assert_eq!(plane.pinned_owner(&key(late)), Some(1));

    // c comes back: existing pins stay where they are; a new client of c goes to c.
    assert_eq!(plane.set_node_live("c", true).unwrap(), Some(0));
    assert_eq!(pins(&plane), [Some(0), Some(1), Some(next)]);
    assert_eq!(forwarded_to(&plane, &frame(of_c)), node_addr(next));
    let fresh = (1..=u16::MAX)
        .map(|i| [10, 9, (i >> 8) as u8, i as u8])
        .find(|ip| Plan::new(&cfg, &[PORT], "").maglev[key(*ip).maglev_index() as usize] == 2)
        .unwrap();
    assert_eq!(forwarded_to(&plane, &frame(fresh)), Some([10, 99, 0, 3]));
}

#[test]
fn members_report_liveness_and_the_local_node() {
    let plane = load(&cluster());
    plane.set_node_live("b", false).unwrap();
    let members = plane.members();
    let view: Vec<(&str, bool, bool)> = members.iter().map(|m| (m.name.as_str(), m.live, m.local)).collect();
    assert_eq!(view, [("a", true, true), ("b", false, false), ("c", true, false)]);
    assert_eq!(members[2].address, Ipv4Addr::new(10, 99, 0, 3));
}

#[test]
fn checks_between_nodes_are_never_steered() {
    let cfg = cluster();
    let plane = load(&cfg);
    // b checks a's data port: from b's address to a's, whatever b's Maglev owner is.
    for owner in [0, 1, 2] {
        let peer = [10, 99, 0, 2];
        let mut check = ipv4_frame(peer, TCP, PORT, SYN);
        check[30..34].copy_from_slice(&[10, 99, 0, 1]);
        let owned = v4_client_owned_by(&cfg, owner);
        // The same packet from a client (not a peer) is steered as usual.
        let mut client = check.clone();
        client[26..30].copy_from_slice(&owned);
        assert_eq!(run(&plane, &check), (XDP_PASS, check.clone()));
        assert_eq!(forwarded_to(&plane, &client), node_addr(owner));
    }
    assert_eq!(count(&plane, action::PASS, reason::OTHER), 3);
}

/// The program carries aya-log's ring buffer and the loader forwards it while a
/// tokio runtime runs (outside one, as in the other tests, nothing is spawned).
#[tokio::test]
async fn program_logs_are_forwarded_inside_a_runtime() {
    let plane = load(&cluster());
    assert!(plane.forwards_logs());
    assert!(!load_outside_runtime().forwards_logs());
}

fn load_outside_runtime() -> DataPlane {
    std::thread::spawn(|| load(&cluster())).join().unwrap()
}

#[test]
fn a_reloaded_node_list_keeps_slots_and_liveness_by_name() {
    let cfg = cluster();
    let plane = load(&cfg);
    let (of_a, of_b) = (v4_client_owned_by(&cfg, 0), v4_client_owned_by(&cfg, 1));
    let frame = |ip: [u8; 4]| ipv4_frame(ip, TCP, PORT, ACK);
    assert_eq!(forwarded_to(&plane, &frame(of_a)), None);
    assert_eq!(forwarded_to(&plane, &frame(of_b)), Some([10, 99, 0, 2]));
    plane.set_node_live("c", false).unwrap();
    // b leaves the list, d joins at its front: a and c keep their slots.
    let mut next = cfg.clone();
    next.nodes.remove(1);
    next.nodes.insert(0, XdpNode { name: "d".into(), address: Ipv4Addr::new(10, 99, 0, 4), mac: Some([4; 6]) });
    plane.reconfigure(&next, &[PORT]).unwrap();
    let view: Vec<(String, bool)> = plane.members().into_iter().map(|m| (m.name, m.live)).collect();
    assert_eq!(view, [("a".into(), true), ("c".into(), false), ("d".into(), true)]);
    let mut expected = Plan::new(&cfg, &[PORT], "");
    expected.set_live("c", false);
    let table = expected.next(&next, &[PORT], "");
    assert_eq!(table.slot("d"), Some(3));
    // b's client is re-pinned to its owner among a and d; a's client stays.
    let moved = table.maglev[ClientKey::v4(of_b).maglev_index() as usize];
    assert!(moved == 0 || moved == 3, "{moved}");
    assert_eq!(plane.pinned_owner(&ClientKey::v4(of_b)), Some(moved));
    assert_eq!(plane.pinned_owner(&ClientKey::v4(of_a)), Some(0));
    assert_eq!(forwarded_to(&plane, &frame(of_b)), (moved == 3).then_some([10, 99, 0, 4]));
    // The new node owns its share of new clients at once.
    let of_d = (0..=u16::MAX)
        .map(|i| [10, 6, (i >> 8) as u8, i as u8])
        .find(|ip| table.maglev[ClientKey::v4(*ip).maglev_index() as usize] == 3)
        .unwrap();
    assert_eq!(forwarded_to(&plane, &frame(of_d)), Some([10, 99, 0, 4]));
}
