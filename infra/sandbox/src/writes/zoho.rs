//! Zoho Books: see the module docs of `crate::writes`.
