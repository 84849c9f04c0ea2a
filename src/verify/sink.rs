//! Where differences go as they are found: nowhere (the report's counts
//! and samples suffice), memory (tests), or an NDJSON file.

use std::io::Write;

use super::report::Difference;
use crate::error::{Error, Result};

/// Where differences go as they are found, one by one. Called from one
/// task, in the order the differences were found.
pub trait DifferenceSink: Send {
    fn record(&mut self, difference: &Difference) -> Result<()>;

    /// Called once when the verification ends (successfully or not).
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Keeps nothing: the report's counts and samples are enough.
#[derive(Debug, Default)]
pub struct NullSink;

impl DifferenceSink for NullSink {
    fn record(&mut self, _: &Difference) -> Result<()> {
        Ok(())
    }
}

/// Keeps every difference in memory; for tests and small checks only.
#[derive(Debug, Default)]
pub struct VecSink(pub Vec<Difference>);

impl DifferenceSink for VecSink {
    fn record(&mut self, d: &Difference) -> Result<()> {
        self.0.push(d.clone());
        Ok(())
    }
}

/// Writes each difference as one JSON line, as it is found.
pub struct NdjsonSink<W: Write + Send> {
    out: std::io::BufWriter<W>,
    path: String,
}

impl NdjsonSink<std::fs::File> {
    /// Creates (or truncates) the report file.
    pub fn create(path: &std::path::Path) -> Result<Self> {
        let file = std::fs::File::create(path).map_err(|e| Error::ReportFailed {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(NdjsonSink::new(file, path.display().to_string()))
    }
}

impl<W: Write + Send> NdjsonSink<W> {
    pub fn new(out: W, path: String) -> Self {
        NdjsonSink {
            out: std::io::BufWriter::new(out),
            path,
        }
    }

    fn failed(&self, e: impl std::fmt::Display) -> Error {
        Error::ReportFailed {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }
}

impl<W: Write + Send> DifferenceSink for NdjsonSink<W> {
    fn record(&mut self, d: &Difference) -> Result<()> {
        serde_json::to_writer(&mut self.out, d).map_err(|e| self.failed(e))?;
        self.out.write_all(b"\n").map_err(|e| self.failed(e))
    }

    fn finish(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| self.failed(e))
    }
}
