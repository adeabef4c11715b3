//! Chartroom's integration tests: real PostgreSQL (a private cluster shared by the test run),
//! the real router over real HTTP, and the real binary. One test binary, modules by topic.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    clippy::panic,
    clippy::many_single_char_names,
    clippy::too_many_lines,
    clippy::missing_panics_doc,
    reason = "integration tests: failures must be loud, fixtures use the wall clock"
)]

mod access_requests;
mod ai_operator_hosts;
mod ai_providers;
mod amendment_requests;
mod api_cookie_origin;
mod api_matrix;
mod appointments_deleted;
mod attack_surface;
mod audit_always_on;
mod audit_append;
mod audit_chain;
mod audit_coverage;
mod audit_forward;
mod audit_log;
mod audit_reports;
mod audit_tail;
mod backup;
mod bad_input;
mod bench_paths;
mod booking_api;
mod capture_api;
mod care_team;
mod client_links;
mod crash;
mod criticality;
mod dast;
mod egress_contract;
mod egress_edit_contract;
mod embedded_binary;
mod emergency;
mod encryption;
mod external_db;
mod first_run;
mod group_commit;
mod identity;
mod incidents;
mod installation_secrets;
mod intake;
mod intake_api;
mod inventory;
mod invitations;
mod isolation_sql;
mod job_leases;
mod notes;
mod openapi_doc;
mod outbox;
mod outbox_bench;
mod outbox_booking;
mod outbox_page;
mod outbox_serve;
mod outbox_webhooks;
mod passkeys;
mod payments;
mod perio_api;
mod perio_dictation;
mod perio_voice;
mod perio_voice_third;
mod practice_settings;
mod principals;
mod push;
mod quotas;
mod record_export;
mod references;
mod replicas;
mod response_shapes;
mod retention;
mod schema;
mod scribe_assist;
mod scribe_binary;
mod scribe_drafting;
mod scribe_eval;
mod scribe_local;
mod scribe_local_unix;
mod sealed_columns;
mod session_access;
mod sessions;
mod signed_messages;
mod sql_lint;
mod subprocessor_notice_email;
mod subprocessors;
mod support;
mod templates_page;
mod trust;
mod waitlist;
mod waitlist_join;
mod web_actions;
mod web_actions_reads;
mod web_booking;
mod web_browser;
mod web_browser_assist;
mod web_browser_capture;
mod web_browser_client;
mod web_browser_dictation;
mod web_browser_passkeys;
mod web_browser_perio;
mod web_browser_requests;
mod web_browser_scribe;
mod web_browser_storage;
mod web_browser_templates;
mod web_browser_visit;
mod web_browser_visit_bench;
mod web_capture;
mod web_intake;
mod web_pages;
mod web_passkeys;
mod web_perio;
mod web_requests;
mod web_session;
mod web_waitlist;
mod wiring;

/// Shared helpers.
mod util;
