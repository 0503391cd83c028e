//! Choosing a key provider from flags: Vault when `--vault-addr` is given,
//! the local keyring otherwise.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::local::{LocalKeyring, master_key_from_base64, master_key_from_file};
use crate::provider::KeyProvider;
use crate::vault::{VaultAuth, VaultProvider};

/// Where tenant keys live.
#[derive(clap::Args, Clone, Default)]
pub struct KeysArgs {
    /// Vault or OpenBao address; without it the local keyring is used.
    #[arg(long, env = "GUARDLINE_VAULT_ADDR")]
    pub vault_addr: Option<String>,
    /// Vault token (token auth).
    #[arg(long, env = "GUARDLINE_VAULT_TOKEN", hide_env_values = true)]
    pub vault_token: Option<String>,
    /// AppRole role id (AppRole auth).
    #[arg(long, env = "GUARDLINE_VAULT_ROLE_ID")]
    pub vault_role_id: Option<String>,
    /// AppRole secret id (AppRole auth).
    #[arg(long, env = "GUARDLINE_VAULT_SECRET_ID", hide_env_values = true)]
    pub vault_secret_id: Option<String>,
    /// AppRole auth mount.
    #[arg(long, env = "GUARDLINE_VAULT_APPROLE_MOUNT", default_value = "approle")]
    pub vault_approle_mount: String,
    /// Vault role for Kubernetes auth (in-cluster).
    #[arg(long, env = "GUARDLINE_VAULT_K8S_ROLE")]
    pub vault_k8s_role: Option<String>,
    /// Kubernetes auth mount.
    #[arg(long, env = "GUARDLINE_VAULT_K8S_MOUNT", default_value = "kubernetes")]
    pub vault_k8s_mount: String,
    /// Service-account token used for Kubernetes auth.
    #[arg(
        long,
        env = "GUARDLINE_VAULT_K8S_JWT_PATH",
        default_value = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    )]
    pub vault_k8s_jwt_path: PathBuf,
    /// Transit mount holding tenant keys.
    #[arg(long, env = "GUARDLINE_VAULT_TRANSIT_MOUNT", default_value = "transit")]
    pub vault_transit_mount: String,
    /// Local keyring file (embedded default).
    #[arg(long, env = "GUARDLINE_KEYRING_PATH")]
    pub keyring_path: Option<PathBuf>,
    /// Base64 master key sealing the local keyring.
    #[arg(long, env = "GUARDLINE_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// File holding the base64 master key.
    #[arg(long, env = "GUARDLINE_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for KeysArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeysArgs")
            .field("vault_addr", &self.vault_addr)
            .field("vault_transit_mount", &self.vault_transit_mount)
            .field("keyring_path", &self.keyring_path)
            .finish_non_exhaustive()
    }
}

impl KeysArgs {
    /// The Vault auth method the flags select.
    fn vault_auth(&self) -> Result<VaultAuth> {
        if let (Some(role_id), Some(secret_id)) = (&self.vault_role_id, &self.vault_secret_id) {
            return Ok(VaultAuth::AppRole {
                mount: self.vault_approle_mount.clone(),
                role_id: role_id.clone(),
                secret_id: secret_id.clone(),
            });
        }
        if let Some(role) = &self.vault_k8s_role {
            return Ok(VaultAuth::Kubernetes {
                mount: self.vault_k8s_mount.clone(),
                role: role.clone(),
                jwt_path: self.vault_k8s_jwt_path.clone(),
            });
        }
        if let Some(token) = &self.vault_token {
            return Ok(VaultAuth::Token(token.clone()));
        }
        Err(Error::Config {
            field: "--vault-token",
            reason: "with --vault-addr, give a token, --vault-role-id and --vault-secret-id, or --vault-k8s-role"
                .into(),
        })
    }

    /// Builds the provider. `create_master_key` lets `guardline up` generate
    /// a master key file on first start.
    pub async fn provider(&self, create_master_key: bool) -> Result<Arc<dyn KeyProvider>> {
        if let Some(addr) = &self.vault_addr {
            let provider = VaultProvider::connect(addr, self.vault_auth()?, &self.vault_transit_mount).await?;
            return Ok(Arc::new(provider));
        }
        let path = self.keyring_path.clone().ok_or(Error::Config {
            field: "--keyring-path",
            reason: "give --vault-addr for Vault or --keyring-path for the local keyring".into(),
        })?;
        let master = match (&self.master_key, &self.master_key_file) {
            (Some(text), _) => master_key_from_base64(text)?,
            (None, Some(file)) => master_key_from_file(file, create_master_key)?,
            (None, None) => {
                return Err(Error::Config {
                    field: "--master-key",
                    reason: "the local keyring needs --master-key or --master-key-file".into(),
                });
            }
        };
        Ok(Arc::new(LocalKeyring::open(&path, master)?))
    }
}
