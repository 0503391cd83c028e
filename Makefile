# One-line targets; the logic lives in scripts/ and in Rust.
.PHONY: run test lint fmt bench e2e generate certs chart-readme images audit

run:      ; cargo run -p guardline -- up
test:     ; scripts/test.sh
lint:     ; cargo fmt --all -- --check && cargo clippy --workspace --all-targets --locked -- -D warnings
fmt:      ; cargo fmt --all
bench:    ; cargo bench --workspace --locked
e2e:      ; scripts/test-deps.sh && cargo build --workspace --bins --locked && cargo test -p guardline-e2e --locked
generate: ; cargo build -p guardline-proto --locked
certs:    ; cargo run -p guardline -- certs
chart-readme: ; scripts/test-deps.sh && .tools/readme-generator/node_modules/.bin/readme-generator -v helm/guardline/values.yaml -r helm/guardline/README.md
images:   ; scripts/test-deps.sh && scripts/images.sh
audit:    ; scripts/test-deps.sh && .tools/bin/cargo-deny check advisories
