//! `real-models`: regenerate the real models' figures, tables and numbers (fetch the
//! models first with `cargo xtask models`).

fn main() -> std::process::ExitCode {
    transformer::chapter::main::<real_models::Settings>(
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_DESCRIPTION"),
    )
}
