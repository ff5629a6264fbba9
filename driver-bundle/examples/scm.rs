//! Drives the host's [`DriverHost`] from the command line, to try the Windows Service
//! Control Manager code (under Wine too) without the installer:
//! `scm install PATH [--start] | remove | status`. Prints one JSON line per call.

use driver_bundle::host;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut h = host::native();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["install", path, rest @ ..] => h
            .install(std::path::Path::new(path), rest.contains(&"--start"))
            .map(|o| serde_json::json!({"install": o})),
        ["remove"] => h.remove().map(|o| serde_json::json!({"remove": o})),
        ["status"] => h.status().map(|s| serde_json::json!({"status": s})),
        _ => {
            eprintln!("usage: scm install PATH [--start] | remove | status");
            return std::process::ExitCode::from(2);
        }
    };
    match result {
        Ok(v) => {
            println!("{v}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("scm ({}): {e}", h.kind());
            std::process::ExitCode::FAILURE
        }
    }
}
