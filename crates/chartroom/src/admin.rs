//! Administrative commands: practices, accounts, memberships. They run as the owner role.

use anyhow::{Context as _, bail};
use clap::Subcommand;
use domain::values::{Email, single_line};
use domain::{Clock as _, PracticeId, Role, RoleSet, SystemClock};
use zeroize::Zeroizing;

use crate::services::{Access, Services};

#[derive(Subcommand)]
pub(crate) enum PracticeCommand {
    /// Create a practice; prints its id.
    Create {
        /// The practice's name.
        #[arg(long)]
        name: String,
    },
    /// List practices (id, name).
    List,
}

#[derive(Subcommand)]
pub(crate) enum UserCommand {
    /// Create an account. The person it is for types their password on standard input
    /// (hidden on a terminal): at least 12 characters, not a common password, not guessable.
    /// They enroll a second factor at their first sign-in.
    Create {
        /// Sign-in email.
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// A vendor support account: outside every practice (never a member), it sees a
        /// practice only through a grant one of its owners approves.
        #[arg(long)]
        support: bool,
    },
    /// Deactivate an account and end all its sessions at once. Its id is never reused.
    Deactivate {
        /// Sign-in email.
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum MemberCommand {
    /// Add an account to a practice with roles (or replace its roles there).
    Add {
        /// The practice id (see `chartroom practice list`).
        #[arg(long)]
        practice: PracticeId,
        /// The account's email.
        #[arg(long)]
        email: String,
        /// A role: owner, admin, clinician or reception. Repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<Role>,
    },
}

pub(crate) async fn practice(svc: &Services, cmd: PracticeCommand) -> anyhow::Result<()> {
    match cmd {
        PracticeCommand::Create { name } => {
            let name = single_line("name", &name, 200)?;
            let id = svc
                .as_owner(Access::Shared, async |o, _| {
                    Ok(o.create_practice(&name, SystemClock.now()).await?)
                })
                .await?;
            println!("{id}");
        }
        PracticeCommand::List => {
            let list = svc
                .as_owner(Access::Shared, async |o, _| Ok(o.list_practices().await?))
                .await?;
            for (id, name, demo) in list {
                println!("{id}  {name}{}", if demo { "  [demo]" } else { "" });
            }
        }
    }
    Ok(())
}

fn read_password(email: &str, name: &str) -> anyhow::Result<Zeroizing<String>> {
    use std::io::IsTerminal as _;
    let pw = if std::io::stdin().is_terminal() {
        Zeroizing::new(rpassword::prompt_password(
            "Password (at least 12 characters): ",
        )?)
    } else {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned())
    };
    server::identity::PasswordPolicy::default().check(&pw, email, name)?;
    Ok(pw)
}

pub(crate) async fn user(svc: &Services, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create {
            email,
            name,
            support,
        } => {
            let email = Email::parse("email", &email)?;
            let name = single_line("name", &name, 200)?;
            let password = read_password(email.as_str(), &name)?;
            let hash =
                tokio::task::spawn_blocking(move || server::password::hash_blocking(&password))
                    .await?
                    .map_err(anyhow::Error::msg)?;
            let id = svc
                .as_owner(Access::Shared, async |o, _| {
                    let created = if support {
                        o.create_support_user(email.as_str(), &name, &hash, SystemClock.now())
                            .await
                    } else {
                        o.create_user(email.as_str(), &name, &hash, SystemClock.now())
                            .await
                    };
                    created.map_err(|e| match e {
                        store::StoreError::Conflict(_) => {
                            anyhow::anyhow!("an active account already uses that email")
                        }
                        other => other.into(),
                    })
                })
                .await?;
            println!("{id}");
        }
        UserCommand::Deactivate { email } => {
            let email = Email::parse("email", &email)?;
            svc.as_owner(Access::Shared, async |o, _| {
                let Some(user) = o.find_user(email.as_str()).await? else {
                    bail!("no active account has that email");
                };
                o.deactivate_user(user, SystemClock.now()).await?;
                println!("deactivated {user}; its sessions have ended");
                Ok(())
            })
            .await?;
        }
    }
    Ok(())
}

pub(crate) async fn member(svc: &Services, cmd: MemberCommand) -> anyhow::Result<()> {
    match cmd {
        MemberCommand::Add {
            practice,
            email,
            roles,
        } => {
            let email = Email::parse("email", &email)?;
            let set: RoleSet = roles.into_iter().collect();
            svc.as_owner(Access::Shared, async |o, _| {
                let Some(user) = o.find_user(email.as_str()).await? else {
                    bail!("no active account has that email: create it first with `chartroom user create`");
                };
                o.add_member(practice, user, set, SystemClock.now()).await.map_err(|e| match e {
                    store::StoreError::Conflict(_) => anyhow::anyhow!("no practice with that id"),
                    other => other.into(),
                })?;
                println!("{user} is now {} in {practice}", set.names().join(", "));
                Ok(())
            })
            .await
        }
    }
}
