//! The transactional outbox and its delivery worker.

use std::sync::Arc;
use std::time::Duration;

use guardline_proto::audit::v1::audit_service_client::AuditServiceClient;
use guardline_proto::audit::v1::{AppendRequest, AuditEvent};
use guardline_runtime::{Error, GrpcChannel, Result};
use prost::Message;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{blob, integer, string, text_null, timestamp_with_time_zone};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The `guardline_audit_outbox` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    /// An event waiting for delivery.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "guardline_audit_outbox")]
    pub struct Model {
        /// Event id (the idempotency key).
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// Encoded `AuditEvent`.
        pub payload: Vec<u8>,
        /// When it was enqueued.
        pub created_at: ChronoDateTimeUtc,
        /// Delivery attempts so far.
        pub attempts: i32,
        /// Not to be tried before this time.
        pub next_attempt_at: ChronoDateTimeUtc,
        /// Last delivery error (a status code, never event content).
        pub last_error: Option<String>,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[derive(DeriveIden)]
enum Outbox {
    #[sea_orm(iden = "guardline_audit_outbox")]
    Table,
    Id,
    Payload,
    CreatedAt,
    Attempts,
    NextAttemptAt,
    LastError,
}

/// Creates the outbox table.
#[derive(Debug)]
pub struct CreateAuditOutbox;

impl MigrationName for CreateAuditOutbox {
    fn name(&self) -> &str {
        "m20261128_000002_guardline_audit_outbox"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateAuditOutbox {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Outbox::Table)
                .if_not_exists()
                .col(string(Outbox::Id).primary_key())
                .col(blob(Outbox::Payload))
                .col(timestamp_with_time_zone(Outbox::CreatedAt))
                .col(integer(Outbox::Attempts))
                .col(timestamp_with_time_zone(Outbox::NextAttemptAt))
                .col(text_null(Outbox::LastError))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("ix_guardline_audit_outbox_due")
                .table(Outbox::Table)
                .col(Outbox::NextAttemptAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Outbox::Table).to_owned()).await
    }
}

/// The migrations this crate contributes to a service's migrator.
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![Box::new(CreateAuditOutbox)]
}

/// Adds `event` to the outbox through `conn`, which should be the
/// transaction that makes the change the event describes.
pub async fn enqueue(conn: &impl ConnectionTrait, event: &AuditEvent) -> Result<()> {
    let now = chrono::Utc::now();
    entity::Entity::insert(entity::ActiveModel {
        id: Set(event.id.clone()),
        payload: Set(event.encode_to_vec()),
        created_at: Set(now),
        attempts: Set(0),
        next_attempt_at: Set(now),
        last_error: Set(None),
    })
    .exec(conn)
    .await?;
    Ok(())
}

/// A client of the audit service.
#[derive(Clone, Debug)]
pub struct AuditClient {
    client: AuditServiceClient<GrpcChannel>,
    timeout: Duration,
}

impl AuditClient {
    /// Talks to audit over `channel`; synchronous appends wait at most `timeout`.
    pub fn new(channel: GrpcChannel, timeout: Duration) -> Self {
        Self { client: AuditServiceClient::new(channel), timeout }
    }

    /// How long one append may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Appends events and returns once audit acknowledged them as durable.
    /// Any failure is UNAVAILABLE: the caller must not proceed unaudited.
    pub async fn append_now(&self, events: Vec<AuditEvent>) -> Result<()> {
        match self.append(events).await {
            Appended::Acknowledged => Ok(()),
            Appended::Refused(_) => Err(Error::Unavailable("audit service did not acknowledge the event".into())),
            Appended::Unreachable(why) => Err(Error::Unavailable(why.into())),
        }
    }

    async fn append(&self, events: Vec<AuditEvent>) -> Appended {
        let mut client = self.client.clone();
        let mut request = tonic::Request::new(AppendRequest { events });
        request.set_timeout(self.timeout);
        match tokio::time::timeout(self.timeout, client.append(request)).await {
            Ok(Ok(_)) => Appended::Acknowledged,
            Ok(Err(status)) if status.code() == tonic::Code::InvalidArgument => {
                tracing::warn!(code = ?status.code(), "audit append refused");
                Appended::Refused(status.message().to_owned())
            }
            Ok(Err(status)) => {
                tracing::warn!(code = ?status.code(), "audit append failed");
                Appended::Unreachable("audit service did not acknowledge the event")
            }
            Err(_) => Appended::Unreachable("audit service did not answer in time"),
        }
    }
}

/// How an append ended.
enum Appended {
    Acknowledged,
    /// Audit answered that the events are invalid: retrying cannot help.
    Refused(String),
    /// Audit could not be reached or did not answer: retry later.
    Unreachable(&'static str),
}

/// Rows audit refused are parked: kept (never silently dropped), never
/// retried, and marked so that an operator finds them.
pub const PARKED: &str = "parked: refused by audit";

/// Delivers the outbox to the audit service.
#[derive(Debug)]
pub struct OutboxWorker {
    db: DatabaseConnection,
    client: AuditClient,
    wake: Arc<Notify>,
    /// Events per Append call.
    pub batch: u64,
    /// First retry delay; doubles per attempt up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// How often the table is polled when nothing wakes the worker.
    pub poll: Duration,
    /// When the depth gauge was last refreshed (a count is not free on a
    /// long outbox: at most every [`DEPTH_EVERY`], every round near the bound).
    depth_counted: std::sync::Mutex<Option<std::time::Instant>>,
    /// The count, for the writers' backpressure.
    backlog: Arc<crate::Backlog>,
}

/// How often the outbox depth gauge is refreshed.
const DEPTH_EVERY: Duration = Duration::from_secs(10);

impl OutboxWorker {
    /// A worker with production defaults.
    pub fn new(db: DatabaseConnection, client: AuditClient) -> Self {
        Self {
            db,
            client,
            wake: Arc::new(Notify::new()),
            batch: 200,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            depth_counted: std::sync::Mutex::new(None),
            backlog: Arc::new(crate::Backlog::new(0)),
        }
    }

    /// Counts into `backlog`, which the service's writes check.
    pub fn with_backlog(mut self, backlog: Arc<crate::Backlog>) -> Self {
        self.backlog = backlog;
        self
    }

    /// Refreshes the depth gauge when it is older than [`DEPTH_EVERY`]; a
    /// gauge left stale never stops delivery.
    async fn record_depth(&self) {
        let due = match self.depth_counted.lock() {
            Ok(mut last) if self.backlog.near() || last.is_none_or(|t| t.elapsed() >= DEPTH_EVERY) => {
                *last = Some(std::time::Instant::now());
                true
            }
            _ => false,
        };
        if !due {
            return;
        }
        match pending(&self.db).await {
            Ok(n) => {
                self.backlog.set(n);
                guardline_runtime::metrics::business().outbox_depth.record(n, &[]);
            }
            Err(error) => tracing::warn!(%error, "outbox depth not counted"),
        }
    }

    /// A handle to wake the worker right after enqueueing.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    fn backoff(&self, attempts: i32) -> Duration {
        let exp = self.min_backoff.saturating_mul(1u32 << attempts.clamp(0, 20));
        let capped = exp.min(self.max_backoff);
        // Up to 20% jitter, so that replicas do not retry in lockstep.
        let jitter = uuid::Uuid::new_v4().as_u128() % 1000;
        capped + capped.mul_f64(jitter as f64 / 5000.0)
    }

    /// Delivers one batch of due events. Returns how many were delivered,
    /// or the delay before the next try when audit could not be reached.
    pub async fn deliver_once(&self) -> Result<Result<usize, Duration>> {
        let now = chrono::Utc::now();
        let rows = self.claim(now).await?;
        self.record_depth().await;
        let metrics = guardline_runtime::metrics::business();
        // The oldest due row comes first: its age is the outbox's.
        let age = rows.first().map_or(0.0, |r| (now - r.created_at).to_std().unwrap_or_default().as_secs_f64());
        metrics.outbox_age.record(age, &[]);
        if rows.is_empty() {
            return Ok(Ok(0));
        }
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut events = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut event =
                AuditEvent::decode(r.payload.as_slice()).map_err(|e| Error::Internal(format!("outbox row: {e}")))?;
            attributed_to_the_writer(&mut event);
            events.push(event);
        }
        match self.client.append(events.clone()).await {
            Appended::Acknowledged => {
                entity::Entity::delete_many().filter(entity::Column::Id.is_in(ids.clone())).exec(&self.db).await?;
                metrics.outbox_delivered.add(ids.len() as u64, &[]);
                Ok(Ok(ids.len()))
            }
            // One bad event must not hold back the others: deliver the batch
            // one by one and park what audit refuses.
            Appended::Refused(_) if rows.len() > 1 => Ok(Ok(self.one_by_one(ids, events).await?)),
            Appended::Refused(why) => {
                self.park(&ids[0], &why).await?;
                Ok(Ok(0))
            }
            Appended::Unreachable(e) => {
                let attempts = rows.iter().map(|r| r.attempts).max().unwrap_or(0) + 1;
                let delay = self.backoff(attempts - 1);
                let next = now + chrono::Duration::from_std(delay).unwrap_or_else(|_| chrono::Duration::seconds(60));
                entity::Entity::update_many()
                    .col_expr(entity::Column::Attempts, Expr::col(entity::Column::Attempts).add(1))
                    .col_expr(entity::Column::NextAttemptAt, Expr::value(next))
                    .col_expr(entity::Column::LastError, Expr::value(e.to_string()))
                    .filter(entity::Column::Id.is_in(ids))
                    .exec(&self.db)
                    .await?;
                tracing::warn!(
                    pending = rows.len(),
                    attempts,
                    retry_in_ms = delay.as_millis() as u64,
                    "audit unreachable, will retry"
                );
                Ok(Err(delay))
            }
        }
    }

    /// Claims a batch of due rows for this worker: one conditional update
    /// moves their next attempt to a lease's end, stamped with a value of
    /// this worker's own, and only the rows carrying that stamp are this
    /// worker's. Another worker (another replica on the same database) finds
    /// them not due and takes others; if this one dies, the lease runs out
    /// and they are due again. Delivery is once in effect: audit also
    /// acknowledges an id it already holds as a duplicate.
    async fn claim(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Vec<entity::Model>> {
        let due: Vec<String> = entity::Entity::find()
            .select_only()
            .column(entity::Column::Id)
            .filter(entity::Column::NextAttemptAt.lte(now))
            .order_by_asc(entity::Column::CreatedAt)
            .order_by_asc(entity::Column::Id)
            .limit(self.batch)
            .into_tuple()
            .all(&self.db)
            .await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        // The stamp: the lease's end, to the microsecond both stores keep,
        // plus a random microsecond offset that tells two workers apart.
        let offset = (uuid::Uuid::new_v4().as_u128() % 1_000_000) as i64;
        let lease =
            chrono::Duration::from_std(self.client.timeout() * 3).unwrap_or_else(|_| chrono::Duration::seconds(60));
        let stamp = now + lease + chrono::Duration::microseconds(offset);
        let stamp = chrono::DateTime::from_timestamp_micros(stamp.timestamp_micros()).unwrap_or(stamp);
        entity::Entity::update_many()
            .col_expr(entity::Column::NextAttemptAt, Expr::value(stamp))
            .filter(entity::Column::Id.is_in(due.clone()))
            .filter(entity::Column::NextAttemptAt.lte(now))
            .exec(&self.db)
            .await?;
        Ok(entity::Entity::find()
            .filter(entity::Column::Id.is_in(due))
            .filter(entity::Column::NextAttemptAt.eq(stamp))
            .order_by_asc(entity::Column::CreatedAt)
            .order_by_asc(entity::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// Delivers events one at a time; returns how many audit took. A
    /// refused one is parked; an outage stops the round.
    async fn one_by_one(&self, ids: Vec<String>, events: Vec<AuditEvent>) -> Result<usize> {
        let mut delivered = 0;
        for (id, event) in ids.into_iter().zip(events) {
            match self.client.append(vec![event]).await {
                Appended::Acknowledged => {
                    entity::Entity::delete_by_id(id).exec(&self.db).await?;
                    delivered += 1;
                }
                Appended::Refused(why) => self.park(&id, &why).await?,
                Appended::Unreachable(_) => break,
            }
        }
        Ok(delivered)
    }

    async fn park(&self, id: &str, why: &str) -> Result<()> {
        // Far in the future rather than deleted: the row is evidence.
        let never = chrono::Utc::now() + chrono::Duration::days(365 * 100);
        entity::Entity::update_many()
            .col_expr(entity::Column::NextAttemptAt, Expr::value(never))
            .col_expr(entity::Column::LastError, Expr::value(format!("{PARKED}: {why}")))
            .filter(entity::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        // The id and audit's reason (a field name), never the event's content.
        tracing::error!(event_id = id, reason = why, "audit refused an event; parked in the outbox");
        Ok(())
    }

    /// Delivers until `shutdown` fires.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let pause = match self.deliver_once().await {
                Ok(Ok(n)) if n as u64 >= self.batch => Duration::ZERO,
                Ok(Ok(_)) => self.poll,
                // Unreachable: retried (and the outbox counted, for the
                // writers' backpressure) at least every five seconds.
                Ok(Err(delay)) => delay.min(Duration::from_secs(5)),
                Err(error) => {
                    tracing::error!(%error, "outbox delivery failed");
                    self.max_backoff.min(Duration::from_secs(5))
                }
            };
            if pause.is_zero() {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// Audit takes an event's service from the writer's certificate and refuses
/// one naming another service. A row enqueued before that rule named the
/// service the writer acted for as the actor: it becomes the
/// `acting_service` detail, as [`crate::event::EventBuilder::actor`] now
/// writes it, so that no such row blocks the outbox after an upgrade.
fn attributed_to_the_writer(event: &mut AuditEvent) {
    if let Some(actor) = event.actor.as_mut()
        && !actor.service_identity.is_empty()
    {
        let service = std::mem::take(&mut actor.service_identity);
        event.details.entry("acting_service".to_owned()).or_insert(service);
    }
}

/// Events still waiting in the outbox (for health and tests).
pub async fn pending(db: &DatabaseConnection) -> Result<u64> {
    use sea_orm::PaginatorTrait;
    Ok(entity::Entity::find().count(db).await?)
}
