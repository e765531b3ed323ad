//! Where a chunk's replicas go: distinct live servers, spread across zones when zones are set,
//! weighted by free space so fuller servers receive less.

use rand::Rng;

use crate::ids::ServerId;

/// A server that may receive a replica.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub id: ServerId,
    pub zone: Option<String>,
    pub free_bytes: u64,
}

/// Picks up to `n` distinct servers from `candidates`, none in `exclude`. Zones are filled
/// round-robin (a zone gets a second replica only when every zone with room has one), and
/// within a zone servers are drawn with probability proportional to their free space.
/// Servers with less than `min_free` bytes free are skipped.
pub fn choose(
    candidates: &[Candidate],
    n: usize,
    exclude: &[ServerId],
    min_free: u64,
    rng: &mut impl Rng,
) -> Vec<ServerId> {
    let mut pool: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| !exclude.contains(&c.id) && c.free_bytes >= min_free)
        .collect();
    let mut chosen: Vec<ServerId> = Vec::new();
    let mut zone_counts: Vec<(Option<String>, usize)> = Vec::new();
    for c in candidates.iter().filter(|c| exclude.contains(&c.id)) {
        bump(&mut zone_counts, &c.zone);
    }
    while chosen.len() < n && !pool.is_empty() {
        // The least used zone(s) among the remaining candidates.
        let count_of = |z: &Option<String>| {
            zone_counts
                .iter()
                .find(|(k, _)| k == z)
                .map(|(_, n)| *n)
                .unwrap_or(0)
        };
        let min = pool.iter().map(|c| count_of(&c.zone)).min().unwrap_or(0);
        let eligible: Vec<usize> = (0..pool.len())
            .filter(|&i| count_of(&pool[i].zone) == min)
            .collect();
        let total: u128 = eligible
            .iter()
            .map(|&i| pool[i].free_bytes.max(1) as u128)
            .sum();
        let mut pick = rng.random_range(0..total.max(1));
        let mut idx = eligible[0];
        for &i in &eligible {
            let w = pool[i].free_bytes.max(1) as u128;
            if pick < w {
                idx = i;
                break;
            }
            pick -= w;
        }
        let c = pool.remove(idx);
        bump(&mut zone_counts, &c.zone);
        chosen.push(c.id.clone());
    }
    chosen
}

fn bump(counts: &mut Vec<(Option<String>, usize)>, zone: &Option<String>) {
    match counts.iter_mut().find(|(k, _)| k == zone) {
        Some((_, n)) => *n += 1,
        None => counts.push((zone.clone(), 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn c(id: &str, zone: Option<&str>, free: u64) -> Candidate {
        Candidate {
            id: ServerId::new(id).unwrap(),
            zone: zone.map(String::from),
            free_bytes: free,
        }
    }

    #[test]
    fn distinct_servers_and_respects_exclusions() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let cs = [
            c("a", None, 10),
            c("b", None, 10),
            c("c", None, 10),
            c("d", None, 10),
        ];
        for _ in 0..100 {
            let got = choose(&cs, 3, &[ServerId::new("b").unwrap()], 0, &mut rng);
            assert_eq!(got.len(), 3);
            assert!(!got.iter().any(|g| g.as_str() == "b"));
            let mut d = got.clone();
            d.dedup();
            assert_eq!(d.len(), 3);
        }
        assert_eq!(
            choose(&cs, 9, &[], 0, &mut rng).len(),
            4,
            "no more than exist"
        );
    }

    #[test]
    fn spreads_across_zones() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let cs = [
            c("a1", Some("a"), 100),
            c("a2", Some("a"), 100),
            c("a3", Some("a"), 100),
            c("b1", Some("b"), 1),
            c("c1", Some("c"), 1),
        ];
        for _ in 0..100 {
            let got = choose(&cs, 3, &[], 0, &mut rng);
            let zones: Vec<char> = got
                .iter()
                .map(|g| g.as_str().as_bytes()[0] as char)
                .collect();
            let mut z = zones.clone();
            z.sort();
            assert_eq!(z, ['a', 'b', 'c'], "one replica per zone: {got:?}");
        }
    }

    #[test]
    fn weighted_by_free_space_and_skips_full() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let cs = [
            c("big", None, 900),
            c("small", None, 100),
            c("full", None, 0),
        ];
        let mut big = 0;
        for _ in 0..1000 {
            let got = choose(&cs, 1, &[], 1, &mut rng);
            assert_ne!(got[0].as_str(), "full");
            if got[0].as_str() == "big" {
                big += 1;
            }
        }
        assert!(
            (820..=970).contains(&big),
            "about 90% to the emptier server, got {big}/1000"
        );
    }
}
