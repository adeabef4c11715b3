-- The scribe: recording consent, capture, encrypted audio, transcripts, AI providers,
-- assistant turns and evidence-linked note drafts (issue 18).
--
-- The path (ARCHITECTURE "The scribe path"): a consent row for the visit → a capture whose
-- state lives here (live / paused / stopped) → audio chunks, each an encrypted blob
-- (`blob_object`, streaming AEAD) → a transcription turn per chunk → transcript segments
-- (encrypted, timed, correctable with history) → a drafting turn → draft sentences each citing
-- segment ids, the unsupported ones flagged → the clinician accepts or edits them and signs.
-- Every AI call is an `assistant_turn` (encrypted prompt and output).
--
-- Nothing here holds PHI in the clear: free text (transcripts, prompts, outputs, sentences) is
-- a field ciphertext bound to (practice, table, column, row); the rest is ids, states, times,
-- counts and closed vocabularies. All tables are practice-scoped with `practice_id` leading
-- every key, and clinical: visible only where `app.clinical_visible(patient)` holds.

-- The practice's scribe policy: the consent rule of its jurisdiction, how long audio is kept
-- after the visit's note is signed, and the longest capture. One row per practice; absent
-- means the defaults (all-party consent, 30 days, 2 hours).
create table scribe_policy (
    practice_id uuid not null references practice (practice_id),
    consent_rule text not null default 'all_party'
        constraint scribe_policy_consent_rule check (consent_rule in ('all_party', 'one_party')),
    audio_retention_days int4 not null default 30
        constraint scribe_policy_audio_retention check (audio_retention_days between 0 and 3650),
    max_capture_seconds int4 not null default 7200
        constraint scribe_policy_max_capture check (max_capture_seconds between 60 and 14400),
    updated_by uuid references app_user (user_id),
    updated_at timestamptz not null,
    primary key (practice_id)
);
alter table scribe_policy enable row level security;
alter table scribe_policy force row level security;
-- Every member reads the policy (the capture screen shows its rule); owners and admins set it.
create policy scribe_policy_read on scribe_policy for select to chartroom_runtime
    using (practice_id = (select app.practice()));
create policy scribe_policy_manage on scribe_policy for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin']);
create policy scribe_policy_change on scribe_policy for update to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin'])
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin']);
create policy owner_all on scribe_policy for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
grant select, insert on scribe_policy to chartroom_runtime;
grant update (consent_rule, audio_retention_days, max_capture_seconds, updated_by, updated_at)
    on scribe_policy to chartroom_runtime;

-- A recording consent for one visit: who consented (the patient or a guardian), how (verbal,
-- written, a form), under which rule, recorded by whom and when; and its withdrawal. No name
-- is stored: the consenter is a role, the clinician an id.
create table recording_consent (
    practice_id uuid not null references practice (practice_id),
    consent_id uuid not null,
    visit_id uuid not null,
    patient_id uuid not null,
    consented_by text not null
        constraint recording_consent_by check (consented_by in ('patient', 'guardian')),
    method text not null
        constraint recording_consent_method check (method in ('verbal', 'written', 'form')),
    consent_rule text not null
        constraint recording_consent_rule check (consent_rule in ('all_party', 'one_party')),
    recorded_by uuid not null references app_user (user_id),
    recorded_at timestamptz not null,
    withdrawn_at timestamptz,
    withdrawn_by uuid references app_user (user_id),
    primary key (practice_id, consent_id),
    constraint recording_consent_visit_fkey foreign key (practice_id, visit_id)
        references visit (practice_id, visit_id),
    constraint recording_consent_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id),
    constraint recording_consent_withdrawal check ((withdrawn_at is null) = (withdrawn_by is null))
);
create index recording_consent_visit_idx on recording_consent (practice_id, visit_id);
-- At most one consent in force per visit.
create unique index recording_consent_active_idx on recording_consent (practice_id, visit_id)
    where withdrawn_at is null;

-- One capture (recording) of a visit. Its state lives here; the browser only reflects it.
-- `elapsed_ms` is the recorded time before the current live stretch began (`live_since`), so
-- the elapsed time shown anywhere is elapsed_ms + (now − live_since) while live.
create table capture (
    practice_id uuid not null references practice (practice_id),
    capture_id uuid not null,
    visit_id uuid not null,
    patient_id uuid not null,
    consent_id uuid not null,
    clinician_id uuid not null references app_user (user_id),
    state text not null constraint capture_state check (state in ('live', 'paused', 'stopped')),
    stop_reason text constraint capture_stop_reason
        check (stop_reason in ('clinician', 'consent_withdrawn', 'max_duration', 'abandoned')),
    started_at timestamptz not null,
    live_since timestamptz,
    elapsed_ms int8 not null default 0 check (elapsed_ms >= 0),
    stopped_at timestamptz,
    max_seconds int4 not null check (max_seconds between 60 and 14400),
    chunks int4 not null default 0 check (chunks >= 0),
    audio_bytes int8 not null default 0 check (audio_bytes >= 0),
    audio_purged_at timestamptz,
    audio_purge_reason text constraint capture_audio_purge_reason
        check (audio_purge_reason in ('retention', 'consent_withdrawn', 'patient_deleted')),
    primary key (practice_id, capture_id),
    constraint capture_visit_fkey foreign key (practice_id, visit_id)
        references visit (practice_id, visit_id),
    constraint capture_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id),
    constraint capture_consent_fkey foreign key (practice_id, consent_id)
        references recording_consent (practice_id, consent_id),
    constraint capture_state_shape check (
        (state = 'live') = (live_since is not null)
        and (state = 'stopped') = (stopped_at is not null)
        and (state = 'stopped') = (stop_reason is not null)),
    constraint capture_purge_shape check ((audio_purged_at is null) = (audio_purge_reason is null))
);
create index capture_visit_idx on capture (practice_id, visit_id, started_at);
-- The live indicator's lookup: the actor's captures that are not stopped.
create index capture_open_idx on capture (practice_id, clinician_id) where state <> 'stopped';
-- One open capture per visit.
create unique index capture_open_visit_idx on capture (practice_id, visit_id) where state <> 'stopped';

-- One uploaded audio chunk: `seq` counts from 0 without gaps; re-sending an accepted `seq`
-- with the same bytes (`sha256`) is a no-op (resume after a network drop). The audio itself
-- is the encrypted blob `blob_id` until purged.
create table capture_chunk (
    practice_id uuid not null,
    capture_id uuid not null,
    -- The capture's patient, so the retention job can purge a patient's chunks by patient.
    patient_id uuid not null,
    seq int4 not null check (seq >= 0),
    blob_id uuid,
    sha256 bytea not null check (length(sha256) = 32),
    bytes int4 not null check (bytes between 1 and 4194304),
    duration_ms int4 not null check (duration_ms between 1 and 120000),
    offset_ms int8 not null check (offset_ms >= 0),
    received_at timestamptz not null,
    transcription text not null default 'pending'
        constraint capture_chunk_transcription
        check (transcription in ('pending', 'done', 'silent', 'failed', 'refused')),
    attempts int2 not null default 0 check (attempts >= 0),
    primary key (practice_id, capture_id, seq),
    constraint capture_chunk_capture_fkey foreign key (practice_id, capture_id)
        references capture (practice_id, capture_id),
    constraint capture_chunk_blob_fkey foreign key (practice_id, blob_id)
        references blob_object (practice_id, blob_id) on delete set null (blob_id)
);
create index capture_chunk_pending_idx on capture_chunk (practice_id, received_at)
    where transcription = 'pending';
create index capture_chunk_patient_idx on capture_chunk (practice_id, patient_id);

-- An AI provider of the practice: a registered subprocessor (vendor, model, purpose, BAA
-- attested by whom and when with a document reference, training disabled, retention, region)
-- or self-hosted (loopback, a Unix socket, the operator's own host). The egress gate reads
-- this posture before any connection opens. The API key, when there is one, is a field
-- ciphertext.
create table ai_provider (
    practice_id uuid not null references practice (practice_id),
    provider_id uuid not null,
    label text not null check (length(label) between 1 and 80),
    adapter text not null constraint ai_provider_adapter check (adapter in (
        'openai_transcription', 'openai_chat', 'anthropic_messages',
        'bedrock_converse', 'aws_transcribe_medical')),
    purpose text not null constraint ai_provider_purpose check (purpose in ('transcription', 'drafting')),
    base_url text not null check (length(base_url) between 1 and 500),
    model text not null check (length(model) between 1 and 200),
    hosting text not null constraint ai_provider_hosting check (hosting in ('vendor', 'self_hosted')),
    vendor text not null check (length(vendor) between 1 and 120),
    baa_attested_by uuid references app_user (user_id),
    baa_attested_at timestamptz,
    baa_document_ref text check (length(baa_document_ref) between 1 and 200),
    training_disabled boolean not null default false,
    retention text not null default '' check (length(retention) <= 200),
    region text not null default '' check (length(region) <= 80),
    api_key_enc bytea check (length(api_key_enc) between 1 and 4096),
    enabled boolean not null default true,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    primary key (practice_id, provider_id),
    constraint ai_provider_baa_shape check (
        (baa_attested_at is null) = (baa_attested_by is null)
        and (baa_attested_at is null) = (baa_document_ref is null))
);
alter table ai_provider enable row level security;
alter table ai_provider force row level security;
-- Clinicians use the practice's providers (read); owners and admins register and change them.
create policy ai_provider_read on ai_provider for select to chartroom_runtime
    using (practice_id = (select app.practice()));
create policy ai_provider_register on ai_provider for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin']);
create policy ai_provider_change on ai_provider for update to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin'])
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin']);
create policy owner_all on ai_provider for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
grant select, insert on ai_provider to chartroom_runtime;
grant update (label, base_url, model, hosting, vendor, baa_attested_by, baa_attested_at, baa_document_ref,
              training_disabled, retention, region, api_key_enc, enabled, updated_at)
    on ai_provider to chartroom_runtime;

-- Every AI call: provider (null = the installation's local default), model, purpose, the
-- prompt and output as field ciphertexts, token counts, latency and outcome. Never updated.
create table assistant_turn (
    practice_id uuid not null references practice (practice_id),
    turn_id uuid not null,
    patient_id uuid not null,
    visit_id uuid,
    capture_id uuid,
    provider_id uuid,
    provider_label text not null check (length(provider_label) between 1 and 80),
    model text not null check (length(model) between 1 and 200),
    purpose text not null constraint assistant_turn_purpose
        check (purpose in ('transcription', 'drafting', 'draft_edit', 'amendment_edit', 'perio_voice')),
    prompt_enc bytea check (length(prompt_enc) <= 16777216),
    output_enc bytea check (length(output_enc) <= 16777216),
    input_tokens int4 check (input_tokens >= 0),
    output_tokens int4 check (output_tokens >= 0),
    latency_ms int4 not null check (latency_ms >= 0),
    outcome text not null constraint assistant_turn_outcome
        check (outcome in ('ok', 'refused', 'error', 'truncated', 'rate_limited')),
    actor_id uuid references app_user (user_id),
    created_at timestamptz not null,
    primary key (practice_id, turn_id),
    constraint assistant_turn_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id),
    constraint assistant_turn_visit_fkey foreign key (practice_id, visit_id)
        references visit (practice_id, visit_id),
    constraint assistant_turn_capture_fkey foreign key (practice_id, capture_id)
        references capture (practice_id, capture_id),
    constraint assistant_turn_provider_fkey foreign key (practice_id, provider_id)
        references ai_provider (practice_id, provider_id)
);
create index assistant_turn_visit_idx on assistant_turn (practice_id, visit_id, created_at);

-- Transcript segments: one row per segment a transcription turn returned, with its times in
-- the capture (milliseconds from the capture's start), an optional speaker label, and the
-- text as a field ciphertext. A correction is a new revision; the history is kept.
create table transcript_segment (
    practice_id uuid not null,
    segment_id uuid not null,
    capture_id uuid not null,
    patient_id uuid not null,
    chunk_seq int4 not null,
    start_ms int8 not null check (start_ms >= 0),
    end_ms int8 not null,
    speaker text check (length(speaker) between 1 and 40),
    turn_id uuid not null,
    revision int4 not null default 0 check (revision >= 0),
    text_enc bytea not null check (length(text_enc) between 1 and 1048576),
    primary key (practice_id, segment_id),
    constraint transcript_segment_chunk_fkey foreign key (practice_id, capture_id, chunk_seq)
        references capture_chunk (practice_id, capture_id, seq),
    constraint transcript_segment_turn_fkey foreign key (practice_id, turn_id)
        references assistant_turn (practice_id, turn_id),
    constraint transcript_segment_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id),
    constraint transcript_segment_times check (end_ms >= start_ms)
);
create index transcript_segment_capture_idx on transcript_segment (practice_id, capture_id, start_ms);

create table transcript_revision (
    practice_id uuid not null,
    segment_id uuid not null,
    patient_id uuid not null,
    revision int4 not null check (revision >= 0),
    text_enc bytea not null check (length(text_enc) between 1 and 1048576),
    revised_by uuid references app_user (user_id),
    revised_at timestamptz not null,
    primary key (practice_id, segment_id, revision),
    constraint transcript_revision_segment_fkey foreign key (practice_id, segment_id)
        references transcript_segment (practice_id, segment_id),
    constraint transcript_revision_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id)
);

-- A note draft for a visit: written by a drafting turn (`turn_id`), or, with no drafting
-- provider, the template filled with structured findings and transcript excerpts
-- (`ai_written` false). `content_enc` keeps the draft as produced, so the signed note can show
-- what the clinician changed from it.
create table note_draft (
    practice_id uuid not null,
    draft_id uuid not null,
    visit_id uuid not null,
    patient_id uuid not null,
    note_id uuid,
    capture_id uuid,
    turn_id uuid,
    ai_written boolean not null,
    template text not null check (template in ('free', 'dental_hygiene', 'dental_exam', 'massage')),
    content_enc bytea not null check (length(content_enc) between 1 and 1048576),
    created_by uuid not null references app_user (user_id),
    created_at timestamptz not null,
    primary key (practice_id, draft_id),
    constraint note_draft_visit_fkey foreign key (practice_id, visit_id)
        references visit (practice_id, visit_id),
    constraint note_draft_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id),
    -- A deleted draft note purged by retention unlinks its draft (the draft stays with its
    -- patient until the patient is purged).
    constraint note_draft_note_fkey foreign key (practice_id, note_id)
        references clinical_note (practice_id, note_id) on delete set null (note_id),
    constraint note_draft_capture_fkey foreign key (practice_id, capture_id)
        references capture (practice_id, capture_id),
    constraint note_draft_turn_fkey foreign key (practice_id, turn_id)
        references assistant_turn (practice_id, turn_id),
    constraint note_draft_ai_shape check (ai_written = (turn_id is not null))
);
create index note_draft_visit_idx on note_draft (practice_id, visit_id, created_at);
create index note_draft_note_idx on note_draft (practice_id, note_id) where note_id is not null;

-- The draft's sentences, per SOAP section, each with the segments it cites and the flags the
-- evidence check raised; a flagged sentence must be accepted before the note can be signed.
create table draft_sentence (
    practice_id uuid not null,
    draft_id uuid not null,
    patient_id uuid not null,
    idx int4 not null check (idx between 0 and 9999),
    section text not null constraint draft_sentence_section
        check (section in ('subjective', 'objective', 'assessment', 'plan')),
    text_enc bytea not null check (length(text_enc) between 1 and 65536),
    evidence uuid[] not null default '{}' check (cardinality(evidence) <= 64),
    flags text[] not null default '{}' check (
        flags <@ array['no_evidence', 'number', 'tooth', 'drug', 'negation', 'unknown_segment']),
    accepted_by uuid references app_user (user_id),
    accepted_at timestamptz,
    primary key (practice_id, draft_id, idx),
    constraint draft_sentence_draft_fkey foreign key (practice_id, draft_id)
        references note_draft (practice_id, draft_id),
    constraint draft_sentence_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id),
    constraint draft_sentence_acceptance check ((accepted_at is null) = (accepted_by is null))
);

-- Clinical visibility for every scribe table that names a patient; the rest follow their
-- parent through a join on the parent's visible row.
alter table recording_consent enable row level security;
alter table recording_consent force row level security;
create policy recording_consent_clinical on recording_consent for all to chartroom_runtime
    using (practice_id = (select app.practice()) and app.clinical_visible(patient_id))
    with check (practice_id = (select app.practice()) and app.clinical_visible(patient_id));
create policy owner_all on recording_consent for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
grant select, insert on recording_consent to chartroom_runtime;
grant update (withdrawn_at, withdrawn_by) on recording_consent to chartroom_runtime;

alter table capture enable row level security;
alter table capture force row level security;
create policy capture_clinical on capture for all to chartroom_runtime
    using (practice_id = (select app.practice()) and app.clinical_visible(patient_id))
    with check (practice_id = (select app.practice()) and app.clinical_visible(patient_id));
create policy owner_all on capture for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
grant select, insert on capture to chartroom_runtime;
grant update (state, stop_reason, live_since, elapsed_ms, stopped_at, chunks, audio_bytes,
              audio_purged_at, audio_purge_reason) on capture to chartroom_runtime;

alter table capture_chunk enable row level security;
alter table capture_chunk force row level security;
create policy capture_chunk_clinical on capture_chunk for all to chartroom_runtime
    using (exists (select 1 from capture c where c.practice_id = capture_chunk.practice_id
                      and c.capture_id = capture_chunk.capture_id))
    with check (exists (select 1 from capture c where c.practice_id = capture_chunk.practice_id
                           and c.capture_id = capture_chunk.capture_id));
create policy owner_all on capture_chunk for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
grant select, insert on capture_chunk to chartroom_runtime;
grant update (blob_id, transcription, attempts) on capture_chunk to chartroom_runtime;

alter table assistant_turn enable row level security;
alter table assistant_turn force row level security;
create policy assistant_turn_clinical on assistant_turn for all to chartroom_runtime
    using (practice_id = (select app.practice()) and app.clinical_visible(patient_id))
    with check (practice_id = (select app.practice()) and app.clinical_visible(patient_id));
create policy owner_all on assistant_turn for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
grant select, insert on assistant_turn to chartroom_runtime;

alter table transcript_segment enable row level security;
alter table transcript_segment force row level security;
create policy transcript_segment_clinical on transcript_segment for all to chartroom_runtime
    using (exists (select 1 from capture c where c.practice_id = transcript_segment.practice_id
                      and c.capture_id = transcript_segment.capture_id))
    with check (exists (select 1 from capture c where c.practice_id = transcript_segment.practice_id
                           and c.capture_id = transcript_segment.capture_id));
create policy owner_all on transcript_segment for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
grant select, insert on transcript_segment to chartroom_runtime;
grant update (revision, text_enc) on transcript_segment to chartroom_runtime;

alter table transcript_revision enable row level security;
alter table transcript_revision force row level security;
create policy transcript_revision_clinical on transcript_revision for all to chartroom_runtime
    using (exists (select 1 from transcript_segment s where s.practice_id = transcript_revision.practice_id
                      and s.segment_id = transcript_revision.segment_id))
    with check (exists (select 1 from transcript_segment s where s.practice_id = transcript_revision.practice_id
                           and s.segment_id = transcript_revision.segment_id));
create policy owner_all on transcript_revision for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
grant select, insert on transcript_revision to chartroom_runtime;

alter table note_draft enable row level security;
alter table note_draft force row level security;
create policy note_draft_clinical on note_draft for all to chartroom_runtime
    using (practice_id = (select app.practice()) and app.clinical_visible(patient_id))
    with check (practice_id = (select app.practice()) and app.clinical_visible(patient_id));
create policy owner_all on note_draft for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
grant select, insert on note_draft to chartroom_runtime;
grant update (note_id) on note_draft to chartroom_runtime;

alter table draft_sentence enable row level security;
alter table draft_sentence force row level security;
create policy draft_sentence_clinical on draft_sentence for all to chartroom_runtime
    using (exists (select 1 from note_draft d where d.practice_id = draft_sentence.practice_id
                      and d.draft_id = draft_sentence.draft_id))
    with check (exists (select 1 from note_draft d where d.practice_id = draft_sentence.practice_id
                           and d.draft_id = draft_sentence.draft_id));
create policy owner_all on draft_sentence for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
grant select, insert on draft_sentence to chartroom_runtime;
grant update (text_enc, flags, evidence, accepted_by, accepted_at) on draft_sentence to chartroom_runtime;

-- An amendment's `assistant_turn_id` must now name a real turn of the note's practice
-- (migration 0017 refused every id until turns existed).
create or replace function app.note_version_assistant_turn() returns trigger
    language plpgsql
    as $$
    begin
        if new.assistant_turn_id is not null and not exists (
            select 1 from public.assistant_turn t
             where t.practice_id = new.practice_id and t.turn_id = new.assistant_turn_id) then
            raise exception 'no such assistant turn in this practice'
                using errcode = 'check_violation', constraint = 'assistant_turn_unknown';
        end if;
        return new;
    end
    $$;
