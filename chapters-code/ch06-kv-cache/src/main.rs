//! `ch06-kv-cache`: regenerate chapter 6's figures, tables and numbers.

fn main() -> std::process::ExitCode {
    transformer::chapter::main::<ch06_kv_cache::Settings>(
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_DESCRIPTION"),
    )
}
