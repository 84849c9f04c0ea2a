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
