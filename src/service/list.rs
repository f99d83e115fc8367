//! A list request after parsing (filter, paging, sorting, projection) and one page of its
//! answer: shared by Users, Groups and the root `/.search`.

use crate::scim::filter::Filter;
use crate::scim::projection::Projection;

use super::View;

/// A list request after parsing: 1-based `start_index`, `count` already clamped.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    pub start_index: usize,
    pub count: Option<usize>,
    pub sort: Option<SortSpec>,
    /// Which attributes the response carries: only their LDAP attributes are read.
    pub projection: Projection,
    /// RFC 9865 `cursor`: empty for a walk's first page, else a `nextCursor` or
    /// `previousCursor` this server gave.
    pub cursor: Option<String>,
}

/// `sortBy` / `sortOrder`.
#[derive(Debug, Clone)]
pub struct SortSpec {
    pub by: crate::scim::filter::AttrPath,
    pub descending: bool,
}

#[derive(Debug, Clone)]
pub struct ListPage {
    pub total_results: usize,
    pub start_index: usize,
    pub resources: Vec<View>,
    /// Set for a page of a cursor walk (RFC 9865): then there is no `startIndex`.
    pub cursor: Option<CursorLinks>,
}

impl ListPage {
    /// A page of a cursor walk: `total` once the walk has seen every match.
    pub fn of_walk(
        resources: Vec<View>,
        next: Option<String>,
        previous: Option<String>,
        total: Option<usize>,
    ) -> ListPage {
        ListPage {
            total_results: total.unwrap_or(0),
            start_index: 1,
            resources,
            cursor: Some(CursorLinks {
                next,
                previous,
                total_known: total.is_some(),
            }),
        }
    }
}

/// The cursors around a page of a walk.
#[derive(Debug, Clone, Default)]
pub struct CursorLinks {
    pub next: Option<String>,
    pub previous: Option<String>,
    /// Whether `total_results` is known (the walk has reached its end).
    pub total_known: bool,
}
