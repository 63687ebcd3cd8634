//! The PostgreSQL store (issue 19, under way): several `serve` nodes on one
//! database. So far: where the database is and how to reach it, its
//! password never shown ([`connect`]); its schema, created and migrated by
//! `serve` itself ([`schema`]); a throwaway server for tests ([`testdb`]).
//! The store itself (claims under leases, pacing shared across nodes) is
//! not written yet.

pub mod connect;
pub mod schema;
pub mod testdb;
