-- The durable outbox (issue 19): messages to clients queued in the same transaction as the
-- change that causes them, sent by the outbox job, settled by verified provider webhooks.
--
-- Nothing here is PHI in the clear: the recipient (a phone number or email address) and the
-- template's slot values (appointment time, link token) are sealed with the practice's data
-- key, bound to (practice, table, column, message id); the rest is ids, closed categories,
-- counts and times. Opt-outs are kept by a keyed blind index of the phone number, never the
-- number. Webhook event ids are the providers' opaque ids.

create table outbox_message (
    practice_id uuid not null references practice (practice_id),
    message_id uuid not null,
    -- The client the message is for (null for a reply to a number no record is known by).
    patient_id uuid,
    template text not null constraint outbox_message_template check (template in (
        'booking_confirmed', 'booking_reminder', 'booking_rescheduled', 'booking_cancelled',
        'intake_request', 'waitlist_offer', 'payment_request', 'stop_confirmed',
        'start_confirmed', 'help')),
    channel text not null constraint outbox_message_channel check (channel in ('sms', 'email', 'push')),
    -- What caused it: the kind of record and its id.
    cause text not null constraint outbox_message_cause check (cause in (
        'online_booking', 'appointment', 'sms_keyword', 'intake', 'waitlist', 'payment')),
    cause_id uuid not null,
    recipient_enc bytea not null,
    slots_enc bytea not null,
    -- The client's time zone for quiet hours (IANA name; null: the practice's).
    time_zone text constraint outbox_message_time_zone check (time_zone ~ '^[A-Za-z0-9_+/-]{1,64}$'),
    status text not null default 'queued' constraint outbox_message_status check (status in (
        'queued', 'sending', 'sent', 'delivered', 'failed', 'refused', 'skipped', 'uncertain')),
    attempts int4 not null default 0 constraint outbox_message_attempts check (attempts between 0 and 100),
    -- When the job may next take it (for `sending`: when its claim lapses).
    next_attempt_at timestamptz not null,
    idempotency_key uuid not null,
    -- The vendor that took it, and its opaque message id.
    provider text constraint outbox_message_provider check (provider ~ '^[a-z0-9_-]{1,40}$'),
    -- (an SMTP relay's is the message's own `Message-ID`, `<key@domain>`).
    provider_message_id text constraint outbox_message_provider_id check (provider_message_id ~ '^[A-Za-z0-9_:.@<>-]{1,128}$'),
    -- Why it is not (yet) sent: a closed category, never a provider's text.
    last_error text constraint outbox_message_last_error check (last_error in (
        'retry', 'rejected', 'unreachable', 'malformed', 'gate', 'scanner', 'opted_out',
        'quiet_hours', 'cap', 'interrupted', 'max_attempts', 'no_channel', 'unreadable')),
    created_at timestamptz not null,
    updated_at timestamptz not null,
    sent_at timestamptz,
    delivered_at timestamptz,
    primary key (practice_id, message_id),
    constraint outbox_message_patient_fkey foreign key (practice_id, patient_id)
        references patient (practice_id, patient_id)
);
-- One message per cause, template and channel: a confirmation or a reminder is queued once.
create unique index outbox_message_once_idx
    on outbox_message (practice_id, cause, cause_id, template, channel);
create unique index outbox_message_key_idx on outbox_message (practice_id, idempotency_key);
create index outbox_message_due_idx on outbox_message (practice_id, next_attempt_at)
    where status in ('queued', 'sending');
create index outbox_message_provider_idx on outbox_message (practice_id, provider, provider_message_id);
create index outbox_message_patient_idx on outbox_message (practice_id, patient_id, sent_at);

-- A practice's sending rules: quiet hours in the client's local time (default 08:00–20:00)
-- and a cap on messages per client per local day (replies to keywords are not capped).
create table outbox_settings (
    practice_id uuid not null references practice (practice_id),
    quiet_end time not null default '08:00',
    quiet_start time not null default '20:00',
    daily_cap int4 not null default 4 constraint outbox_settings_cap check (daily_cap between 1 and 50),
    updated_at timestamptz not null,
    primary key (practice_id),
    constraint outbox_settings_window check (quiet_end < quiet_start)
);

-- SMS opt-outs mirrored from the carrier (STOP / START), by the number's blind index under
-- the practice's data key version that made it.
create table sms_opt_out (
    practice_id uuid not null references practice (practice_id),
    phone_tag bytea not null,
    opted_out boolean not null,
    updated_at timestamptz not null,
    primary key (practice_id, phone_tag)
);

-- Verified provider events already acted on: a replay is refused on (provider, event id).
-- Not a tenant table: events arrive before their practice is known, and hold no PHI.
create table webhook_event (
    provider text not null constraint webhook_event_provider check (provider ~ '^[a-z0-9_-]{1,40}$'),
    event_id text not null constraint webhook_event_id check (length(event_id) between 1 and 200),
    received_at timestamptz not null,
    primary key (provider, event_id)
);

alter table outbox_message enable row level security;
alter table outbox_message force row level security;
alter table outbox_settings enable row level security;
alter table outbox_settings force row level security;
alter table sms_opt_out enable row level security;
alter table sms_opt_out force row level security;

-- Staff who run the front desk see the outbox (ids, states, times; the sealed columns are
-- opened only by the job). Whoever causes a message queues it (`app.outbox_enqueue`): the
-- scheduling roles, owners and admins, and the public booking page. Only the job (owner
-- role) changes a message.
create policy outbox_message_read on outbox_message for select to chartroom_runtime
    using (practice_id = (select app.practice())
           and (select app.actor_roles()) && array['owner', 'admin', 'reception']);
create policy outbox_settings_read on outbox_settings for select to chartroom_runtime
    using (practice_id = (select app.practice()));
create policy outbox_settings_manage on outbox_settings for all to chartroom_runtime
    using (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin'])
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['owner', 'admin']);
create policy sms_opt_out_read on sms_opt_out for select to chartroom_runtime
    using (practice_id = (select app.practice())
           and (select app.actor_roles()) && array['owner', 'admin', 'reception']);

create policy owner_all on outbox_message for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_all on outbox_settings for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));
create policy owner_all on sms_opt_out for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));

grant select on outbox_message to chartroom_runtime;
grant select, insert, update, delete on outbox_settings to chartroom_runtime;
grant select on sms_opt_out to chartroom_runtime;

-- Webhook events are recorded by the webhook handler (owner role), read by nobody else.
alter table webhook_event enable row level security;
alter table webhook_event force row level security;
create policy owner_all on webhook_event for all to chartroom_owner
    using (true) with check (true);

-- Queues one message in the entered practice, once per (cause, cause id, template, channel):
-- true when it was queued, false when the same message already was. SECURITY DEFINER because
-- the roles that cause messages (clinicians, the public booking page) may not read the outbox,
-- and a queue-once insert must see the rows it would duplicate (`on conflict` needs them). It
-- inserts only a new `queued` row of the entered practice, for those roles.
create function app.outbox_enqueue(
    p_message uuid, p_patient uuid, p_template text, p_channel text, p_cause text,
    p_cause_id uuid, p_recipient bytea, p_slots bytea, p_time_zone text,
    p_next_attempt_at timestamptz, p_key uuid, p_now timestamptz) returns boolean
    language plpgsql volatile security definer
    set search_path = pg_catalog, public
    as $$
    declare
        n int;
    begin
        if app.practice() is null or not (app.actor_roles()
                && array['owner', 'admin', 'reception', 'clinician', 'online_booking']) then
            raise exception 'outbox: no practice entered, or a role that cannot queue messages'
                using errcode = '42501';
        end if;
        insert into public.outbox_message (practice_id, message_id, patient_id, template, channel,
                cause, cause_id, recipient_enc, slots_enc, time_zone, status, attempts,
                next_attempt_at, idempotency_key, created_at, updated_at)
        values (app.practice(), p_message, p_patient, p_template, p_channel, p_cause, p_cause_id,
                p_recipient, p_slots, p_time_zone, 'queued', 0, p_next_attempt_at, p_key, p_now, p_now)
        on conflict (practice_id, cause, cause_id, template, channel) do nothing;
        get diagnostics n = row_count;
        return n = 1;
    end
    $$;
alter function app.outbox_enqueue(uuid, uuid, text, text, text, uuid, bytea, bytea, text,
    timestamptz, uuid, timestamptz) owner to chartroom_owner;
revoke all on function app.outbox_enqueue(uuid, uuid, text, text, text, uuid, bytea, bytea, text,
    timestamptz, uuid, timestamptz) from public;
grant execute on function app.outbox_enqueue(uuid, uuid, text, text, text, uuid, bytea, bytea,
    text, timestamptz, uuid, timestamptz) to chartroom_runtime;
