//! `driver_bundle::manifest` on real files: `describe` then `verify_file` against
//! sha256sum as an independent hasher, and each kind of mismatch with its values.

use std::path::Path;
use std::process::Command;

use driver_bundle::manifest::{self, Manifest, Role, VerifyError};

fn sha256sum(p: &Path) -> String {
    let o = Command::new("sha256sum")
        .arg(p)
        .output()
        .expect("sha256sum (coreutils)");
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn verify_file_names_path_expected_and_actual() {
    let t = tempfile::tempdir().expect("tempdir");
    let dir = t.path();
    std::fs::create_dir_all(dir.join("uml")).expect("mkdir");
    // Larger than the 64 KiB read buffer, so the streaming loop runs several times.
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("uml/linux.uml"), &body).expect("write");
    let f = manifest::describe(dir, "uml/linux.uml", Role::Kernel).expect("describe");
    assert_eq!(f.sha256, sha256sum(&dir.join("uml/linux.uml")));
    assert_eq!(f.size, 200_000);
    manifest::verify_file(dir, &f).expect("matches");

    // The manifest round-trips through its text.
    let m = Manifest {
        name: "t".into(),
        version: "1".into(),
        files: vec![f.clone()],
    };
    let again = Manifest::parse(&m.to_toml(), "kit.toml").expect("parse own output");
    assert_eq!(again, m);

    let mut changed = body.clone();
    changed[150_000] ^= 1;
    std::fs::write(dir.join("uml/linux.uml"), &changed).expect("write");
    let actual = sha256sum(&dir.join("uml/linux.uml"));
    match manifest::verify_file(dir, &f) {
        Err(VerifyError::DigestMismatch {
            path,
            expected,
            actual: a,
            size,
        }) => {
            assert_eq!(path, "uml/linux.uml");
            assert_eq!(expected, f.sha256);
            assert_eq!(a, actual);
            assert_eq!(size, 200_000);
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    std::fs::write(dir.join("uml/linux.uml"), &body[..1000]).expect("write");
    let e = manifest::verify_file(dir, &f).expect_err("short file");
    assert!(
        matches!(
            e,
            VerifyError::SizeMismatch {
                expected: 200_000,
                actual: 1000,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().starts_with("uml/linux.uml: size mismatch"),
        "{e}"
    );
    std::fs::remove_file(dir.join("uml/linux.uml")).expect("rm");
    let e = manifest::verify_file(dir, &f).expect_err("missing");
    assert!(matches!(e, VerifyError::Missing { .. }), "{e}");
    assert_eq!(e.path(), "uml/linux.uml");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc/hostname", dir.join("uml/linux.uml")).expect("symlink");
        let e = manifest::verify_file(dir, &f).expect_err("symlink");
        assert!(matches!(e, VerifyError::NotAFile { .. }), "{e}");
    }
    // A folder without kit.toml is its own error.
    assert!(matches!(
        Manifest::load(dir),
        Err(manifest::ManifestError::Missing { .. })
    ));
}

#[test]
fn load_refuses_a_kit_toml_that_is_not_a_regular_file_or_over_the_limit() {
    // Issue 19, item 10: a FIFO (or a folder) named kit.toml was read forever.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(manifest::MANIFEST_NAME);
    std::fs::create_dir(&path).expect("mkdir");
    assert!(
        matches!(
            Manifest::load(dir.path()),
            Err(manifest::ManifestError::NotAFile { .. })
        ),
        "a folder named kit.toml"
    );
    std::fs::remove_dir(&path).expect("rmdir");
    // Sparse: one byte over the limit, read as zeros.
    std::fs::File::create(&path)
        .and_then(|f| f.set_len(manifest::MANIFEST_LIMIT + 1))
        .expect("kit.toml");
    let e = Manifest::load(dir.path()).expect_err("over the limit");
    assert!(matches!(e, manifest::ManifestError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("is larger than 64 MiB"), "{e}");
}
