//! The schema, created and migrated at start: embedded, versioned
//! migrations (`migrations/NNNN_*.sql`), each applied once, in order, in
//! one transaction with the version it brings. Nodes starting at once on an
//! empty database take turns under an advisory lock, so none fails; a
//! database written by a newer version is refused, naming both versions.

use tokio_postgres::Client;

/// The schema version this build writes.
pub const VERSION: i32 = 9;

/// Each version's SQL, oldest first.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_store.sql")),
    (2, include_str!("migrations/0002_interactions.sql")),
    (3, include_str!("migrations/0003_fences.sql")),
    (4, include_str!("migrations/0004_silences.sql")),
    (5, include_str!("migrations/0005_owners.sql")),
    (6, include_str!("migrations/0006_origins.sql")),
    (7, include_str!("migrations/0007_slots.sql")),
    (8, include_str!("migrations/0008_indexes.sql")),
    (9, include_str!("migrations/0009_counts.sql")),
];

/// The advisory lock migrations take (`slack-al` in ASCII), so concurrent
/// starts take turns.
const LOCK: i64 = 0x736c_6163_6b2d_616c;

/// Why the schema could not be brought to [`VERSION`].
#[derive(Debug)]
pub enum SchemaError {
    /// The database was migrated by a newer build.
    Newer { found: i32, known: i32 },
    /// PostgreSQL refused or the connection failed.
    Database(tokio_postgres::Error),
}

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemaError::Newer { found, known } => write!(
                f,
                "the database's schema is version {found}, written by a newer slack-alertd; this one knows up to version {known}: run the newer version, or a database of its own"
            ),
            SchemaError::Database(e) => write!(f, "migrating the schema: {e}"),
        }
    }
}

impl std::error::Error for SchemaError {}

impl From<tokio_postgres::Error> for SchemaError {
    fn from(e: tokio_postgres::Error) -> Self {
        SchemaError::Database(e)
    }
}

/// Brings the schema to [`VERSION`]; returns the version it found (0 for
/// an empty database).
pub async fn migrate(client: &mut Client) -> Result<i32, SchemaError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS slack_alertd_schema (
             version     integer PRIMARY KEY,
             applied_at  timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let found: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM slack_alertd_schema",
            &[],
        )
        .await?
        .get(0);
    if found > VERSION {
        return Err(SchemaError::Newer {
            found,
            known: VERSION,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO slack_alertd_schema (version) VALUES ($1)",
            &[version],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use testdb::TestDb;

    async fn connect(url: &str) -> Client {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn nodes_starting_at_once_on_an_empty_database_all_succeed_and_migrate_once() {
        let db = TestDb::start();
        let url = db.url();
        runtime().block_on(async {
            let starts: Vec<_> = (0..4)
                .map(|_| {
                    let url = url.clone();
                    tokio::spawn(async move {
                        let mut client = connect(&url).await;
                        migrate(&mut client).await
                    })
                })
                .collect();
            let mut found = Vec::new();
            for start in starts {
                found.push(start.await.unwrap().unwrap());
            }
            found.sort();
            // One node found it empty; the others found it migrated.
            assert_eq!(found, vec![0, VERSION, VERSION, VERSION]);
            let client = connect(&url).await;
            let versions: Vec<i32> = client
                .query("SELECT version FROM slack_alertd_schema", &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            assert_eq!(versions, (1..=VERSION).collect::<Vec<_>>());
            // The tables are there.
            for table in ["alerts", "messages", "channels", "windows", "nodes"] {
                client
                    .query(&format!("SELECT count(*) FROM {table}"), &[])
                    .await
                    .unwrap_or_else(|e| panic!("{table}: {e}"));
            }
        });
    }

    #[test]
    fn a_database_of_version_1_is_migrated_keeping_what_it_holds() {
        let db = TestDb::start();
        let url = db.url();
        runtime().block_on(async {
            let client = connect(&url).await;
            client
                .batch_execute(&format!(
                    "CREATE TABLE slack_alertd_schema (version integer PRIMARY KEY,
                         applied_at timestamptz NOT NULL DEFAULT now());
                     {}
                     INSERT INTO slack_alertd_schema (version) VALUES (1);
                     INSERT INTO messages (alert_key, workspace, channel_id, ts, kept_seq)
                         VALUES ('k', 'w', 'C1', '1.1', 1);",
                    MIGRATIONS[0].1
                ))
                .await
                .unwrap();
            let mut client = connect(&url).await;
            assert_eq!(migrate(&mut client).await.unwrap(), 1);
            let row = client
                .query_one(
                    "SELECT ts, alert, acknowledged_by, silenced_until_ms FROM messages WHERE alert_key = 'k'",
                    &[],
                )
                .await
                .unwrap();
            assert_eq!(row.get::<_, &str>(0), "1.1");
            assert_eq!(row.get::<_, Option<String>>(1), None);
            assert_eq!(row.get::<_, Option<String>>(2), None);
            assert_eq!(row.get::<_, Option<i64>>(3), None);
            // An event sent during a silence can be recorded.
            client
                .execute(
                    "INSERT INTO alerts (id, accepted_ms, alert, options, alert_key, status)
                     VALUES (1, 0, '{}', '[]', 'k', 'silenced')",
                    &[],
                )
                .await
                .unwrap();
        });
    }

    #[test]
    fn a_database_from_a_newer_version_is_refused_naming_both() {
        let db = TestDb::start();
        let url = db.url();
        runtime().block_on(async {
            let mut client = connect(&url).await;
            migrate(&mut client).await.unwrap();
            client
                .execute(
                    "INSERT INTO slack_alertd_schema (version) VALUES ($1)",
                    &[&(VERSION + 1)],
                )
                .await
                .unwrap();
            let e = migrate(&mut client).await.unwrap_err();
            let said = e.to_string();
            assert!(
                said.contains(&format!("version {}", VERSION + 1))
                    && said.contains(&format!("up to version {VERSION}")),
                "{said}"
            );
        });
    }

    #[test]
    fn the_throwaway_server_survives_an_immediate_restart() {
        let db = TestDb::start();
        let url = db.url();
        let rt = runtime();
        rt.block_on(async {
            let mut client = connect(&url).await;
            migrate(&mut client).await.unwrap();
        });
        db.restart_immediately();
        rt.block_on(async {
            let mut client = connect(&url).await;
            // Migrated before the crash: nothing to do after it.
            assert_eq!(migrate(&mut client).await.unwrap(), VERSION);
        });
    }
}
