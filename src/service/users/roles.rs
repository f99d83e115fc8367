//! Roles as group memberships (`[roles]`): which role groups a write joins and leaves.

use crate::scim::value::{Resource as ScimResource, ScimValue};

use crate::directory::Dn;
use crate::service::error::{ServiceError, ServiceResult};
use crate::service::memberships::Memberships;
use crate::service::write::{Step, StepKind};
use crate::service::RequestCtx;

use super::Users;

/// Role groups a write joins and leaves (`[roles]`).
#[derive(Debug, Default)]
pub(super) struct RoleChanges {
    join: Vec<Dn>,
    leave: Vec<Dn>,
}

/// The role values of `res`, without empty or case-insensitive repeats; more than `limit`
/// is a 400.
pub(super) fn role_names(res: &ScimResource, limit: usize) -> ServiceResult<Vec<String>> {
    let count = res
        .core("roles")
        .map_or(0, |v| ScimValue::elements(v).len());
    if count > limit {
        return Err(ServiceError::bad_request(
            crate::scim::ScimType::TooMany,
            format!(
                "{count} roles in one request; the server accepts at most {limit} (limits.max_values_per_attribute)"
            ),
        ));
    }
    crate::mapping::distinct_values(res, "roles", "value").map_err(ServiceError::from)
}

impl Users {
    /// The memberships, when users' roles are role-group memberships (`[roles]`).
    pub(super) fn role_groups(&self) -> Option<&Memberships> {
        self.memberships.as_deref().filter(|m| m.roles)
    }

    /// The role groups to join and to leave going from the roles in `old` to those in `new`
    /// (one search). A role with no group is a 400 before anything is written; a role whose
    /// group is gone is left as it is.
    pub(super) async fn role_changes(
        &self,
        ctx: &RequestCtx,
        old: &ScimResource,
        new: &ScimResource,
    ) -> ServiceResult<RoleChanges> {
        let Some(m) = self.role_groups() else {
            return Ok(RoleChanges::default());
        };
        let limit = self.settings.limits.max_values_per_attribute;
        let (old, new) = (role_names(old, limit)?, role_names(new, limit)?);
        let has = |list: &[String], r: &String| list.iter().any(|x| x.eq_ignore_ascii_case(r));
        let joins: Vec<String> = new.iter().filter(|r| !has(&old, r)).cloned().collect();
        let leaves: Vec<String> = old.iter().filter(|r| !has(&new, r)).cloned().collect();
        let mut all = joins.clone();
        all.extend(leaves.iter().cloned());
        let groups = m.role_groups(ctx, &all).await?;
        if let Some(missing) = joins
            .iter()
            .find(|r| !groups.contains_key(&r.to_lowercase()))
        {
            return Err(ServiceError::invalid_value(format!(
                "no role \"{missing}\": roles are the groups under {}; create the group first",
                m.roles_container(ctx)
                    .map(|d| d.to_string())
                    .unwrap_or_default()
            )));
        }
        let dns = |names: Vec<String>| -> Vec<Dn> {
            names
                .iter()
                .filter_map(|r| groups.get(&r.to_lowercase()).cloned())
                .collect()
        };
        Ok(RoleChanges {
            join: dns(joins),
            leave: dns(leaves),
        })
    }

    /// The plan steps applying `changes` to the user at `dn`: one member add or delete per
    /// role group, each undone by its inverse.
    pub(super) fn role_steps(&self, dn: &Dn, changes: &RoleChanges) -> Vec<Step> {
        let Some(m) = self.role_groups() else {
            return Vec::new();
        };
        let join = changes
            .join
            .iter()
            .map(|g| (g, m.values(vec![dn.clone()], vec![])));
        let leave = changes
            .leave
            .iter()
            .map(|g| (g, m.values(vec![], vec![dn.clone()])));
        join.chain(leave)
            .map(|(g, values)| m.change_step(StepKind::Roles, g, values))
            .collect()
    }
}
