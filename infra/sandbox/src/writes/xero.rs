//! Xero: see the module docs of `crate::writes`.
