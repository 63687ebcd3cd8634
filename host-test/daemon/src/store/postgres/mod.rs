//! The PostgreSQL store (issue 19, under way): several `serve` nodes on one
//! database. So far its schema, created and migrated by `serve` itself
//! ([`schema`]), and a throwaway server for tests ([`testdb`]); the store
//! itself (claims under leases, pacing shared across nodes) is not written
//! yet.

pub mod schema;
pub mod testdb;
