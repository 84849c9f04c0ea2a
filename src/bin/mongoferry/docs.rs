//! `mongoferry completions SHELL` and `mongoferry man [DIR]`: shell
//! completion scripts and man pages, generated from the CLI's own clap
//! definition, so they never drift from what the command accepts.
//! `scripts/package.sh` calls both to put them into the .deb.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Command};
use clap_complete::{Generator, Shell};

const BIN: &str = "mongoferry";

#[derive(Args)]
#[command(after_long_help = "\
Install by hand, for your user:
  bash: mongoferry completions bash > ~/.local/share/bash-completion/completions/mongoferry
  zsh:  mongoferry completions zsh > ~/.zfunc/_mongoferry
        (with 'fpath+=~/.zfunc' before 'compinit' in ~/.zshrc)
  fish: mongoferry completions fish > ~/.config/fish/completions/mongoferry.fish
Then open a new shell. The .deb installs them for everyone.")]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum, value_name = "SHELL")]
    shell: Shell,
}

#[derive(Args)]
pub struct ManArgs {
    /// The directory to write the pages into; created if it is missing.
    #[arg(value_name = "DIR", default_value = ".")]
    dir: PathBuf,
}

/// `mongoferry completions SHELL`: the script, on standard output.
pub fn completions(args: &CompletionsArgs, cmd: Command) -> anyhow::Result<ExitCode> {
    let script = completion_script(args.shell, cmd).map_err(|e| {
        anyhow::anyhow!(
            "The {} completion script could not be generated ({e}). Report this as a bug.",
            args.shell
        )
    })?;
    let mut out = std::io::stdout().lock();
    match out.write_all(&script).and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // `mongoferry completions bash | head`: the reader had enough.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(anyhow::anyhow!(
            "The completion script could not be written to standard output ({e}). Redirect it to a file you can write, such as '> mongoferry.bash'."
        )),
    }
}

/// The completion script of `cmd` for `shell`.
pub fn completion_script(shell: Shell, mut cmd: Command) -> std::io::Result<Vec<u8>> {
    cmd.set_bin_name(BIN);
    cmd.build();
    let mut script = Vec::new();
    shell.try_generate(&cmd, &mut script)?;
    Ok(script)
}

/// `mongoferry man [DIR]`: writes the pages and prints each one's path.
pub fn man(args: &ManArgs, cmd: Command) -> anyhow::Result<ExitCode> {
    let dir = &args.dir;
    let pages = man_pages(cmd, dir).map_err(|e| {
        anyhow::anyhow!(
            "The man pages could not be written into {} ({e}). Give a directory you can write to.",
            dir.display()
        )
    })?;
    for page in pages {
        println!("{}", page.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `mongoferry.1`, which lists the subcommands, and one page per
/// visible subcommand (`mongoferry-sync.1`, `mongoferry-profile-add.1`,
/// ...), as git's are, so both `man mongoferry` and `man mongoferry-sync`
/// work. Returns the files written, the main page first.
pub fn man_pages(cmd: Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = cmd.name(BIN).bin_name(BIN).disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    write_pages(cmd, dir, &mut written)?;
    Ok(written)
}

fn write_pages(cmd: Command, dir: &Path, written: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let subcommands: Vec<Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let name = cmd
        .get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_uppercase();
    let page = clap_mangen::Man::new(cmd)
        .title(name)
        .source(format!("{BIN} {}", env!("CARGO_PKG_VERSION")))
        .manual("Mongoferry Manual")
        .generate_to(dir)?;
    written.push(page);
    for sub in subcommands {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn cli() -> Command {
        crate::Cli::command()
    }

    #[test]
    fn every_shell_gets_a_script_naming_the_subcommands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = String::from_utf8(completion_script(shell, cli()).unwrap()).unwrap();
            for sub in ["sync", "commit", "throttle", "completions"] {
                assert!(script.contains(sub), "{shell}: no {sub}");
            }
        }
    }

    #[test]
    fn man_pages_are_written_for_the_command_and_each_visible_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        let pages = man_pages(cli(), dir.path()).unwrap();
        let names: Vec<String> = pages
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(String::from))
            .collect();
        assert_eq!(names[0], "mongoferry.1");
        for page in ["mongoferry-sync.1", "mongoferry-profile-add.1"] {
            assert!(names.iter().any(|n| n == page), "{page} in {names:?}");
        }
        // The hidden `man` command and clap's `help` get none.
        assert!(!names.iter().any(|n| n == "mongoferry-man.1"), "{names:?}");
        assert!(!names.iter().any(|n| n == "mongoferry-help.1"), "{names:?}");
        let main = std::fs::read_to_string(&pages[0]).unwrap();
        assert!(main.contains("\n.TH MONGOFERRY 1 "), "{main}");
        assert!(main.contains("mongoferry\\-sync(1)"), "{main}");
    }

    #[test]
    fn a_directory_that_cannot_be_made_is_one_sentence() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let args = ManArgs {
            dir: file.path().join("man1"),
        };
        let e = man(&args, cli()).unwrap_err().to_string();
        assert!(e.ends_with("Give a directory you can write to."), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
