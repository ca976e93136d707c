//! End-to-end tests of onboard-bulk (filled in below).
