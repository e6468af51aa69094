//! include/exitless.h is exactly what cbindgen 0.29.2 generates from this crate
//! with cbindgen.toml (the same generator maturin uses for the Python module).
//! Regenerate with `EXITLESS_BLESS=1 cargo test -p exitless-ffi --test header`.

#[test]
fn committed_header_is_current() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let generated = String::from_utf8(generated).unwrap();
    let path = format!("{dir}/include/exitless.h");
    if std::env::var_os("EXITLESS_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(committed == generated, "{path} is stale: run `make header`");
    // cffi cannot parse C23 enum syntax (`enum X : type`); 0.29.3+ emits it.
    assert!(!generated.contains("enum") || !generated.contains(" : "), "C23 enum syntax in header");
}
