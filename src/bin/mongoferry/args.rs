//! Arguments several commands share.

/// The two clusters and the scope a command looks at.
#[derive(clap::Args)]
pub struct ClusterArgs {
    /// Source connection string (or MONGOFERRY_SOURCE).
    #[arg(long, env = "MONGOFERRY_SOURCE", hide_env_values = true)]
    pub source: String,
    /// Destination connection string (or MONGOFERRY_DESTINATION).
    #[arg(long, env = "MONGOFERRY_DESTINATION", hide_env_values = true)]
    pub destination: String,
    /// Namespaces in scope: 'db', 'db.coll', '*' wildcards. Repeatable.
    #[arg(long = "include", value_name = "PATTERN")]
    pub include: Vec<String>,
    /// Namespaces to leave out. Repeatable.
    #[arg(long = "exclude", value_name = "PATTERN")]
    pub exclude: Vec<String>,
}

/// `--event-source`: where the sync reads the source's changes from.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum EventSourceArg {
    /// The oplog for a source older than 6.0, change streams otherwise.
    #[default]
    Auto,
    /// A cluster-wide change stream (the source must be 6.0 or newer).
    ChangeStream,
    /// The source's oplog (a replica set of 4.4 or newer).
    Oplog,
}

impl From<EventSourceArg> for mongoferry::EventSourceChoice {
    fn from(a: EventSourceArg) -> Self {
        match a {
            EventSourceArg::Auto => mongoferry::EventSourceChoice::Auto,
            EventSourceArg::ChangeStream => mongoferry::EventSourceChoice::ChangeStream,
            EventSourceArg::Oplog => mongoferry::EventSourceChoice::Oplog,
        }
    }
}
