//! Multipart uploads in progress, kept in ZooKeeper under `uploads/` (see
//! `docs/zookeeper.md`): an upload's record and one record per stored part, each naming the
//! part's chunks. Completing an upload commits a manifest made of the parts' chunk lists, so
//! no part data is copied. While a part record names a chunk, the orphan collector keeps it
//! ([`pinned`]); an upload left alone longer than `s3_multipart_max_age` is collected
//! ([`collect_abandoned`]).

use std::collections::HashSet;
use std::time::Duration;

use zookeeper_client::{Client, Error as ZkClientError};

use super::namespace::NsError;
use crate::fencing::{FenceError, FencedOp};
use crate::leadership::Leadership;
use crate::zk::{self, Layout, ZkError, records};
pub use filegrid_proto::manifest::{PartRecord, UploadRecord};

/// Longest an upload id is (they are made as 32 hex digits).
const MAX_ID_LEN: usize = 64;

/// Whether `id` can be an upload id (so it is safe as a ZooKeeper node name).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Starts an upload; returns its id.
pub async fn create(lead: &Leadership, record: &UploadRecord) -> Result<String, NsError> {
    let id = format!("{:032x}", rand::random::<u128>());
    lead.write(&[FencedOp::Create {
        path: lead.layout().upload(&id),
        data: records::encode(record),
        options: lead.layout().persistent(),
    }])
    .await?;
    Ok(id)
}

/// The upload `id`, if it is in progress.
pub async fn get(
    client: &Client,
    layout: &Layout,
    id: &str,
) -> Result<Option<UploadRecord>, NsError> {
    if !valid_id(id) {
        return Ok(None);
    }
    Ok(zk::read::<UploadRecord>(client, &layout.upload(id))
        .await?
        .map(|(r, _)| r))
}

/// Records a stored part, replacing an earlier part of the same number. Returns whether
/// one was replaced (its chunks are orphans now).
pub async fn put_part(
    lead: &Leadership,
    id: &str,
    number: u32,
    part: &PartRecord,
) -> Result<bool, NsError> {
    let path = lead.layout().upload_part(id, number);
    let data = records::encode(part);
    // A part of very many chunks (a large part at a small `chunk_size`) is refused rather
    // than sent: ZooKeeper would drop the connection.
    super::namespace::fits_request(&path, &data)?;
    // The upload must still be there: checked in the same transaction.
    let check = FencedOp::Check {
        path: lead.layout().upload(id),
        version: 0,
    };
    let create = FencedOp::Create {
        path: path.clone(),
        data: data.clone(),
        options: lead.layout().persistent(),
    };
    match lead.write(&[check.clone(), create]).await {
        Ok(_) => Ok(false),
        Err(FenceError::Operation {
            source: ZkClientError::NodeExists,
            ..
        }) => {
            lead.write(&[
                check,
                FencedOp::SetData {
                    path,
                    data,
                    version: None,
                },
            ])
            .await?;
            Ok(true)
        }
        Err(FenceError::Operation {
            source: ZkClientError::NoNode | ZkClientError::BadVersion,
            ..
        }) => Err(NsError::NotFound(format!("upload {id}"))),
        Err(e) => Err(e.into()),
    }
}

/// The stored parts of upload `id`, by number.
pub async fn parts(
    client: &Client,
    layout: &Layout,
    id: &str,
) -> Result<Vec<(u32, PartRecord)>, NsError> {
    let mut names = match client.list_children(&layout.upload(id)).await {
        Ok(n) => n,
        Err(ZkClientError::NoNode) => return Err(NsError::NotFound(format!("upload {id}"))),
        Err(e) => return Err(e.into()),
    };
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let Ok(number) = name.parse::<u32>() else {
            continue;
        };
        if let Some((part, _)) =
            zk::read::<PartRecord>(client, &layout.upload_part(id, number)).await?
        {
            out.push((number, part));
        }
    }
    Ok(out)
}

/// Removes upload `id` and its part records (their chunks stay while a manifest names them).
pub async fn remove(lead: &Leadership, id: &str) -> Result<(), NsError> {
    let layout = lead.layout();
    let names = match lead.client().list_children(&layout.upload(id)).await {
        Ok(n) => n,
        Err(ZkClientError::NoNode) => return Err(NsError::NotFound(format!("upload {id}"))),
        Err(e) => return Err(e.into()),
    };
    // Parts in batches (a transaction stays small), then the upload itself.
    for batch in names.chunks(500) {
        let ops: Vec<FencedOp> = batch
            .iter()
            .map(|n| FencedOp::Delete {
                path: format!("{}/{n}", layout.upload(id)),
                version: None,
            })
            .collect();
        lead.write(&ops).await?;
    }
    match lead
        .write(&[FencedOp::Delete {
            path: layout.upload(id),
            version: None,
        }])
        .await
    {
        Ok(_) => Ok(()),
        // A part stored meanwhile: its upload is being completed or aborted twice.
        Err(FenceError::Operation {
            source: ZkClientError::NotEmpty,
            ..
        }) => Err(NsError::Conflict(format!(
            "upload {id} changed while it was removed"
        ))),
        Err(FenceError::Operation {
            source: ZkClientError::NoNode,
            ..
        }) => Err(NsError::NotFound(format!("upload {id}"))),
        Err(e) => Err(e.into()),
    }
}

/// Every upload in progress, with its id.
pub async fn all(client: &Client, layout: &Layout) -> Result<Vec<(String, UploadRecord)>, NsError> {
    let names = match client.list_children(&layout.uploads()).await {
        Ok(n) => n,
        Err(ZkClientError::NoNode) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::with_capacity(names.len());
    for id in names {
        if let Some((r, _)) = zk::read::<UploadRecord>(client, &layout.upload(&id)).await? {
            out.push((id, r));
        }
    }
    Ok(out)
}

/// The chunks that parts of uploads in progress hold: the orphan collector keeps them.
pub async fn pinned(client: &Client, layout: &Layout) -> Result<HashSet<String>, ZkError> {
    let mut out = HashSet::new();
    let ids = match client.list_children(&layout.uploads()).await {
        Ok(n) => n,
        Err(ZkClientError::NoNode) => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for id in ids {
        let names = match client.list_children(&layout.upload(&id)).await {
            Ok(n) => n,
            Err(ZkClientError::NoNode) => continue,
            Err(e) => return Err(e.into()),
        };
        for n in names {
            if let Some((part, _)) =
                zk::read::<PartRecord>(client, &format!("{}/{n}", layout.upload(&id))).await?
            {
                out.extend(part.chunks.into_iter().map(|c| c.id));
            }
        }
    }
    Ok(out)
}

/// Whether an upload started at `created` (Unix ms) is abandoned at `now` (pure).
pub fn abandoned(created: u64, now: u64, max_age: Duration) -> bool {
    now.saturating_sub(created) > max_age.as_millis() as u64
}

/// Removes uploads older than `max_age`; returns how many. Their chunks become orphans.
pub async fn collect_abandoned(lead: &Leadership, max_age: Duration) -> Result<usize, NsError> {
    let now = records::now_ms();
    let mut removed = 0;
    for (id, r) in all(lead.client(), lead.layout()).await? {
        if abandoned(r.created, now, max_age) {
            match remove(lead, &id).await {
                Ok(()) | Err(NsError::NotFound(_)) => {
                    tracing::info!(upload = %id, bucket = %r.bucket, key = %r.key, "collected an abandoned multipart upload");
                    removed += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_are_hex_and_bounded() {
        assert!(valid_id("0123456789abcdef0123456789abcdef"));
        assert!(!valid_id(""));
        assert!(!valid_id("../files"));
        assert!(!valid_id(&"a".repeat(65)));
    }

    #[test]
    fn uploads_are_abandoned_past_their_age() {
        let day = Duration::from_secs(86_400);
        assert!(!abandoned(1_000, 1_000 + 86_400_000, day));
        assert!(abandoned(1_000, 1_001 + 86_400_000, day));
        assert!(
            !abandoned(5_000, 1_000, day),
            "a clock step back abandons nothing"
        );
    }
}
