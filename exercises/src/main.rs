//! The exercise runner: `cargo run -p exercises` shows your progress and the next
//! hint.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use exercises::{Outcome, Variant};

#[derive(Parser)]
#[command(
    about = "Progress, hints and checks for the exercises of 'Decoder-Only on Trial'"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Test every exercise, in book order, show which pass, and name the next
    /// unsolved one (the default).
    List,
    /// Print an exercise's hint.
    Hint { name: String },
    /// Run one exercise's tests and show their full output.
    Test { name: String },
    /// For maintainers: every starter compiles and fails, every solution passes and
    /// is rustfmt-clean, every hint is non-empty, no stray files.
    Check,
}

fn find<'a>(
    list: &'a [exercises::Exercise],
    name: &str,
) -> anyhow::Result<&'a exercises::Exercise> {
    list.iter().find(|e| e.name == name).ok_or_else(|| {
        let names: Vec<_> = list.iter().map(|e| e.name.as_str()).collect();
        anyhow::anyhow!(
            "no exercise called {name:?}; there are: {}",
            names.join(", ")
        )
    })
}

fn list(root: &std::path::Path) -> anyhow::Result<()> {
    let list = exercises::load(root)?;
    let mut next = None;
    let mut done = 0;
    println!(
        "Testing {} exercises (in release; the first run compiles for a while)...\n",
        list.len()
    );
    for ex in &list {
        let (outcome, _) = exercises::test(root, &ex.name, Variant::Reader)?;
        let mark = match outcome {
            Outcome::Passes => {
                done += 1;
                "done         "
            }
            Outcome::Fails => "tests fail   ",
            Outcome::DoesNotCompile => "doesn't build",
        };
        println!(
            "  {mark}  {:<6} {:<28} exercises/starters/{}.rs",
            ex.chapter, ex.name, ex.name
        );
        if outcome != Outcome::Passes && next.is_none() {
            next = Some(ex);
        }
    }
    println!("\nProgress: {done}/{} solved.", list.len());
    match next {
        Some(ex) => {
            println!(
                "\nNext: {} (edit exercises/starters/{}.rs, read exercises/tests/{}.rs)",
                ex.name, ex.name, ex.name
            );
            println!(
                "Run its tests with `cargo run -p exercises -- test {}`.",
                ex.name
            );
            println!(
                "Stuck? `cargo run -p exercises -- hint {}` prints a hint.",
                ex.name
            );
        }
        None => println!("Every exercise passes. Well done!"),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = exercises::root();
    let result = (|| -> anyhow::Result<bool> {
        match cli.command.unwrap_or(Cmd::List) {
            Cmd::List => list(&root).map(|()| true),
            Cmd::Hint { name } => {
                let list = exercises::load(&root)?;
                println!("{}", find(&list, &name)?.hint.trim());
                Ok(true)
            }
            Cmd::Test { name } => {
                let list = exercises::load(&root)?;
                let ex = find(&list, &name)?;
                let (outcome, log) =
                    exercises::test(&root, &ex.name, Variant::Reader)?;
                println!("{log}");
                match outcome {
                    Outcome::Passes => println!("{}: every test passes.", ex.name),
                    Outcome::Fails => println!(
                        "{}: some tests fail (see above). Stuck? `cargo run -p exercises -- hint {}`",
                        ex.name, ex.name
                    ),
                    Outcome::DoesNotCompile => {
                        println!(
                            "{}: exercises/starters/{}.rs does not compile yet.",
                            ex.name, ex.name
                        )
                    }
                }
                Ok(outcome == Outcome::Passes)
            }
            Cmd::Check => {
                for note in exercises::check(&root)? {
                    println!("ok: {note}");
                }
                println!("The exercise check passed.");
                Ok(true)
            }
        }
    })();
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
