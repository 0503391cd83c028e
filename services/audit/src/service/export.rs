//! A tenant's whole log as an export file (`crates/audit-log`'s format),
//! produced page by page: a header with the keys and the pruned frontier,
//! every stored entry with its signed head, and the head at the last entry.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use tokio_stream::Stream;

use super::Log;
use crate::domain::export::{FORMAT, Line};
use crate::error::Result;

/// Entries read per page.
const PAGE: u64 = 1000;

/// The export of `tenant`'s log as chunks of JSON lines, one per page; an
/// error ends the stream.
pub fn chunks(log: Arc<Log>, tenant: String) -> impl Stream<Item = Result<String>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        if let Err(e) = produce(&log, &tenant, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

async fn produce(log: &Log, tenant: &str, tx: &tokio::sync::mpsc::Sender<Result<String>>) -> Result<()> {
    let keys = log.public_keys().iter().map(|(k, v)| (k.clone(), B64.encode(v))).collect();
    let (pruned_before, frontier) = log.pruned(tenant).await?;
    let frontier = frontier.iter().map(|h| B64.encode(h)).collect();
    let mut chunk = Line::Header { format: FORMAT.into(), tenant_id: tenant.to_owned(), keys, pruned_before, frontier }
        .to_json_line();
    let (mut from, mut last) = (pruned_before, None);
    loop {
        let page = log.records_page(tenant, from, Some(PAGE)).await?;
        let Some(end) = page.last().cloned() else { break };
        for r in &page {
            chunk.push_str(&Line::entry(r).to_json_line());
        }
        from = end.index + 1;
        last = Some(end);
        if tx.send(Ok(std::mem::take(&mut chunk))).await.is_err() {
            return Ok(());
        }
    }
    if let Some(r) = last {
        let size = r.index + 1;
        let root = log.root_at(tenant, size).await?;
        let head = Line::TreeHead {
            tree_size: size,
            root_hash: B64.encode(root),
            timestamp_ms: r.head_timestamp_ms,
            key_id: r.head_kid.clone(),
            signature: B64.encode(&r.head_signature),
        };
        chunk.push_str(&head.to_json_line());
    }
    let _ = tx.send(Ok(chunk)).await;
    Ok(())
}
