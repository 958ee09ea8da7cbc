//! `ttya-ops users`: the app's users of a tenant and their roles.

use clap::Subcommand;
use shared::tenancy::Role;
use shared::{Error, Result};

use crate::Ops;

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    List {
        tenant_id: String,
    },
    /// Gives a user a role (owner, admin, member, viewer); adds the user if new (plan limits apply).
    SetRole {
        tenant_id: String,
        user_id: String,
        role: String,
    },
    Remove {
        tenant_id: String,
        user_id: String,
    },
}

pub(crate) async fn run(ops: &Ops, cmd: UserCmd) -> Result<String> {
    let store = ops.tenants();
    match cmd {
        UserCmd::List { tenant_id } => {
            store.get(&tenant_id).await?;
            let users = store.list_users(&tenant_id).await?;
            Ok(users.iter().map(|(u, r)| format!("{u}\t{}", r.as_str())).collect::<Vec<_>>().join("\n"))
        }
        UserCmd::SetRole { tenant_id, user_id, role } => {
            let tenant = store.get(&tenant_id).await?;
            let role: Role = role.parse()?;
            store.set_role(&tenant, &user_id, role).await?;
            Ok(format!("{user_id} is {} of {tenant_id}", role.as_str()))
        }
        UserCmd::Remove { tenant_id, user_id } => {
            if store.remove_user(&tenant_id, &user_id).await? {
                Ok(format!("removed {user_id} from {tenant_id}"))
            } else {
                Err(Error::NotFound(format!("user {user_id} in tenant {tenant_id}")))
            }
        }
    }
}
