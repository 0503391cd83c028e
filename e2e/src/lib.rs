//! End-to-end journeys: the mesh as separate processes over mTLS with
//! PostgreSQL and OpenBao, as Kubernetes would run it. The e2e issue fills
//! this crate once the five services have their domains; until then the
//! black-box tests of `guardline up` live in `crates/guardline/tests`.
