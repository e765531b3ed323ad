//! In which order a pass repairs its files, and in what steps. A file of hundreds of
//! thousands of chunks may need as many copies; done in one go, every other file of the pass
//! would wait hours for it, its manifest would be written once at the very end (all that work
//! lost if leadership moves meanwhile), and the write would cover the whole chunk list. So
//! each file's work is cut into slices, each ending with a manifest write of only what it
//! changed, and the slices of all files are taken in turns: the first slice of every file,
//! then the second of those that have more, and so on. Pure: the executor runs the result.

use super::plan::{Action, ChunkRepair, FileRepair};

/// Most chunk steps in one slice.
pub const SLICE_CHUNKS: usize = 4096;
/// Most bytes a slice copies (16 s at the default `repair_rate`).
pub const SLICE_BYTES: u64 = 1 << 30;

/// The chunk a step is about.
pub fn chunk_of(step: &ChunkRepair) -> &str {
    match step {
        ChunkRepair::Copy(c) => &c.chunk,
        ChunkRepair::SetReplicas { chunk, .. } | ChunkRepair::NoSource { chunk } => chunk,
    }
}

/// Bytes a step copies.
fn bytes_of(step: &ChunkRepair) -> u64 {
    match step {
        ChunkRepair::Copy(c) => c.len.saturating_mul(c.to.len() as u64),
        _ => 0,
    }
}

/// Cuts `file`'s steps into slices of at most `max_chunks` steps and `max_bytes` copied (a
/// single step larger than that is a slice of its own), a new slice also starting wherever
/// the manifest part (`part_of`) changes, so that a slice's write touches one part.
pub fn slices(
    file: FileRepair,
    part_of: &dyn Fn(&str) -> Option<u32>,
    max_chunks: usize,
    max_bytes: u64,
) -> Vec<FileRepair> {
    let FileRepair {
        path,
        file_id,
        chunks,
    } = file;
    let mut out = Vec::new();
    let mut cur: Vec<ChunkRepair> = Vec::new();
    let mut cur_bytes = 0u64;
    let mut cur_part = None;
    for step in chunks {
        let part = part_of(chunk_of(&step));
        let bytes = bytes_of(&step);
        let full = cur.len() >= max_chunks || cur_bytes.saturating_add(bytes) > max_bytes;
        if !cur.is_empty() && (full || part != cur_part) {
            out.push(FileRepair {
                path: path.clone(),
                file_id: file_id.clone(),
                chunks: std::mem::take(&mut cur),
            });
            cur_bytes = 0;
        }
        cur_part = part;
        cur_bytes = cur_bytes.saturating_add(bytes);
        cur.push(step);
    }
    if !cur.is_empty() {
        out.push(FileRepair {
            path,
            file_id,
            chunks: cur,
        });
    }
    out
}

/// The plan's actions with each file's repair cut into [`slices`] (`part_of` takes the
/// file id and the chunk id) and the slices of all files taken in turns. Actions before the first repair stay first (read repairs), those
/// after the last stay last (drain marks, orphan deletions), each in their order.
pub fn interleave(
    actions: Vec<Action>,
    part_of: &dyn Fn(&str, &str) -> Option<u32>,
    max_chunks: usize,
    max_bytes: u64,
) -> Vec<Action> {
    let mut before = Vec::new();
    let mut after = Vec::new();
    let mut files: Vec<std::vec::IntoIter<FileRepair>> = Vec::new();
    for action in actions {
        match action {
            Action::RepairFile(f) => {
                let file_id = f.file_id.clone();
                let this_file = |chunk: &str| part_of(&file_id, chunk);
                files.push(slices(f, &this_file, max_chunks, max_bytes).into_iter());
            }
            other if files.is_empty() => before.push(other),
            other => after.push(other),
        }
    }
    let mut out = before;
    loop {
        let mut any = false;
        for f in files.iter_mut() {
            if let Some(slice) = f.next() {
                out.push(Action::RepairFile(slice));
                any = true;
            }
        }
        if !any {
            break;
        }
    }
    out.extend(after);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::repair::plan::{ChunkCopy, CopyReason, Held, NextReplicas};
    use crate::ids::ServerId;

    fn sid(s: &str) -> ServerId {
        ServerId::new(s).unwrap()
    }

    fn copy(chunk: &str, len: u64) -> ChunkRepair {
        ChunkRepair::Copy(ChunkCopy {
            chunk: chunk.into(),
            len,
            checksum: "crc32c:00000000".into(),
            from: sid("a"),
            to: vec![sid("b")],
            reason: CopyReason::Dead,
            replicas: NextReplicas::unchanged_for_tests(),
        })
    }

    fn file(name: &str, steps: usize, len: u64) -> FileRepair {
        FileRepair {
            path: name.into(),
            file_id: format!("{name}-id"),
            chunks: (0..steps)
                .map(|i| copy(&format!("{name}-{i}"), len))
                .collect(),
        }
    }

    fn names(f: &FileRepair) -> Vec<&str> {
        f.chunks.iter().map(chunk_of).collect()
    }

    fn no_parts(_: &str) -> Option<u32> {
        None
    }

    #[test]
    fn a_file_is_cut_by_chunks_and_by_bytes_keeping_order() {
        let s = slices(file("f", 5, 10), &no_parts, 2, 1000);
        let got: Vec<Vec<&str>> = s.iter().map(names).collect();
        assert_eq!(got, [vec!["f-0", "f-1"], vec!["f-2", "f-3"], vec!["f-4"]]);
        assert!(s.iter().all(|x| x.path == "f" && x.file_id == "f-id"));

        let s = slices(file("f", 5, 10), &no_parts, 100, 25);
        assert_eq!(
            s.iter().map(|x| x.chunks.len()).collect::<Vec<_>>(),
            [2, 2, 1]
        );
        // A step larger than a slice's bytes is a slice of its own.
        let s = slices(file("f", 2, 100), &no_parts, 100, 25);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn a_slice_never_spans_two_manifest_parts() {
        // Chunks 0-2 in part 0, 3-5 in part 1.
        let part_of = |c: &str| c.rsplit('-').next()?.parse::<u32>().ok().map(|i| i / 3);
        let s = slices(file("f", 6, 1), &part_of, 100, 1000);
        let got: Vec<Vec<&str>> = s.iter().map(names).collect();
        assert_eq!(got, [vec!["f-0", "f-1", "f-2"], vec!["f-3", "f-4", "f-5"]]);
    }

    #[test]
    fn small_files_are_not_held_up_by_a_huge_one() {
        let orphan = Action::DeleteOrphan(Held {
            server: sid("a"),
            chunk: "x-0".into(),
        });
        let actions = vec![
            Action::MarkDrained(sid("d")),
            Action::RepairFile(file("huge", 10, 1)),
            Action::RepairFile(file("s1", 1, 1)),
            Action::RepairFile(file("s2", 3, 1)),
            orphan,
        ];
        let out = interleave(actions, &|_, _| None, 2, 1000);
        let order: Vec<String> = out
            .iter()
            .map(|a| match a {
                Action::RepairFile(f) => format!("{}:{}", f.path, f.chunks.len()),
                Action::MarkDrained(_) => "drained".into(),
                Action::DeleteOrphan(_) => "orphan".into(),
                Action::Rewrite { .. } => "rewrite".into(),
            })
            .collect();
        assert_eq!(
            order,
            [
                "drained", "huge:2", "s1:1", "s2:2", "huge:2", "s2:1", "huge:2", "huge:2",
                "huge:2", "orphan"
            ]
        );
        // Nothing is lost or repeated.
        let steps: usize = out
            .iter()
            .map(|a| match a {
                Action::RepairFile(f) => f.chunks.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(steps, 14);
    }
}
