-- Web Push subscriptions of staff (issue 19: push, content-free) and the installation's VAPID
-- key. A subscription is a browser's RFC 8030 endpoint and its RFC 8291 keys (`p256dh`,
-- `auth`): a capability to send to that browser, so it is sealed with the practice's data
-- key (`subscription_enc`: endpoint and keys as one JSON value, bound to the practice, this
-- table, the column and the row). `endpoint_digest` (SHA-256 of the endpoint) keeps one row
-- per member and browser; `endpoint_host` is the push service's host name, checked against
-- the subprocessor registry when the subscription was made, and not about anyone.
create table push_subscription (
    practice_id uuid not null references practice (practice_id),
    subscription_id uuid not null,
    user_id uuid not null,
    endpoint_digest bytea not null
        constraint push_subscription_digest_len check (octet_length(endpoint_digest) = 32),
    endpoint_host text not null
        constraint push_subscription_host check (endpoint_host ~ '^[a-z0-9.:\[\]-]{1,253}$'),
    subscription_enc bytea not null
        constraint push_subscription_enc_len check (octet_length(subscription_enc) between 33 and 2048),
    created_at timestamptz not null,
    primary key (practice_id, subscription_id),
    -- A member's subscriptions go with the membership.
    constraint push_subscription_member_fkey foreign key (practice_id, user_id)
        references membership (practice_id, user_id) on delete cascade,
    constraint push_subscription_once unique (practice_id, user_id, endpoint_digest)
);

alter table push_subscription enable row level security;
alter table push_subscription force row level security;

-- A member manages their own subscriptions only; nobody else sees them. The outbox job (owner
-- role) reads them to send and deletes the ones the push service says are gone.
create policy push_subscription_own on push_subscription for all to chartroom_runtime
    using (practice_id = (select app.practice()) and user_id = (select app.actor()))
    with check (practice_id = (select app.practice()) and user_id = (select app.actor()));
create policy owner_all on push_subscription for all to chartroom_owner
    using (practice_id = (select app.practice())) with check (practice_id = (select app.practice()));

grant select, insert, delete on push_subscription to chartroom_runtime;

-- The push messages the outbox sends: the one content-free template.
alter table outbox_message drop constraint outbox_message_template;
alter table outbox_message add constraint outbox_message_template check (template in (
    'booking_confirmed', 'booking_reminder', 'booking_rescheduled', 'booking_cancelled',
    'intake_request', 'waitlist_offer', 'payment_request', 'stop_confirmed',
    'start_confirmed', 'help', 'push_update'));

-- The installation's VAPID key (RFC 8292), sealed like the lookup-tag key.
alter table installation_secret drop constraint installation_secret_name_check;
alter table installation_secret add constraint installation_secret_name_check
    check (name in ('lookup_tag_key', 'vapid_private_key'));
