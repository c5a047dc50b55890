//! `tessera completions`: scripts for bash, zsh and fish that name every subcommand, a bash
//! script bash itself accepts, and no panic when the reader goes away early.

// In a `cfg(test)` module so that helpers, not only tests, may unwrap (see `clippy.toml`).
#[cfg(test)]
mod completions {
    use std::io::Read;
    use std::process::{Command, Stdio};

    fn completions(shell: &str) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn every_shell_gets_every_subcommand() {
        for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
            let script = completions(shell);
            for sub in [
                "run",
                "query",
                "status",
                "reconcile",
                "catalog",
                "contract",
                "infra",
            ] {
                assert!(script.contains(sub), "{shell}: no `{sub}`");
            }
        }
    }

    #[test]
    fn the_bash_script_parses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.bash");
        std::fs::write(&path, completions("bash")).unwrap();
        let status = Command::new("bash").arg("-n").arg(&path).status().unwrap();
        assert!(status.success());
    }

    #[test]
    fn a_closed_pipe_is_an_error_not_a_panic() {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["completions", "fish"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the reading end at once.
        drop(child.stdout.take());
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        child.wait().unwrap();
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
