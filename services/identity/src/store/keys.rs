//! Token signing keys, sealed under the platform data key.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, EntityTrait};

use super::{Conn, signing_key};
use crate::error::Result;

/// Every signing key.
pub async fn all(c: &impl Conn) -> Result<Vec<signing_key::Model>> {
    Ok(signing_key::Entity::find().all(c.conn()).await?)
}

/// Stores a new key.
pub async fn insert(c: &impl Conn, row: signing_key::Model) -> Result<()> {
    signing_key::Entity::insert(signing_key::ActiveModel::from(row)).exec(c.conn()).await?;
    Ok(())
}

/// Marks a key retired (it signs no more) at `at`.
pub async fn retire(c: &impl Conn, kid: &str, at: DateTime<Utc>) -> Result<()> {
    signing_key::Entity::update(signing_key::ActiveModel {
        kid: sea_orm::ActiveValue::Unchanged(kid.to_owned()),
        retired_at: Set(Some(at)),
        ..Default::default()
    })
    .exec(c.conn())
    .await?;
    Ok(())
}

/// Marks a key revoked (it is published no more) at `at`.
pub async fn revoke(c: &impl Conn, kid: &str, at: DateTime<Utc>) -> Result<()> {
    signing_key::Entity::update(signing_key::ActiveModel {
        kid: sea_orm::ActiveValue::Unchanged(kid.to_owned()),
        revoked_at: Set(Some(at)),
        ..Default::default()
    })
    .exec(c.conn())
    .await?;
    Ok(())
}
