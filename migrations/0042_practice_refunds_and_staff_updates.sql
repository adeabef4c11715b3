-- Issue 19 follow-ups: the practice's own cancellations refund, a refund is done only when the
-- money covers it, staff push updates for more events, and the templates preview's scanner
-- reads the same client list as the outbox job.

-- 1. A staff cancellation of a paid online booking refunds what the client paid, in full (the
-- practice cancelled, not the client: no window applies). The scheduling roles queue that
-- refund (`refund`, `due`) in the cancellation's transaction, worked by the payments job
-- exactly like the refund of a client's cancellation outside the window (0040).
create policy booking_payment_practice_refund on booking_payment for insert to chartroom_runtime
    with check (practice_id = (select app.practice()) and (select app.actor_roles()) && array['clinician', 'reception']
                and state = 'due' and kind = 'refund');

-- 2. A refund is `refunded` only when the amount the processor reports refunded (the Refund
-- API's `amount`, `charge.refunded`'s cumulative `amount_refunded`) covers the row's amount.
-- Less than that is `refund_partial`: not done (no `settled_at`), not retried (asking again
-- could refund more than was paid), shown to staff with `refunded_minor`, settled by a later
-- `charge.refunded` whose total covers it.
alter table booking_payment drop constraint booking_payment_state;
alter table booking_payment add constraint booking_payment_state
    check (state in ('pending', 'paid', 'card_saved', 'failed', 'expired', 'paid_after_release', 'recorded',
                     'due', 'processing', 'requires_action', 'declined', 'refund_pending', 'refunded',
                     'refund_partial'));
alter table booking_payment add column refunded_minor int4
    constraint booking_payment_refunded check (refunded_minor between 0 and 1000000);

-- 3. When the client cancelled through their manage link (null: not cancelled by the client;
-- a staff cancellation leaves it null). The outbox job's staff push updates read it.
alter table appointment add column client_cancelled_at timestamptz;
create index appointment_client_cancelled_idx on appointment (practice_id, client_cancelled_at)
    where client_cancelled_at is not null;

-- 4. The practice's own clients for the outbound scanner of the templates preview. Owners and
-- admins read no patient rows (row-level security), yet the preview must scan with the same
-- client list the outbox job scans real sends with. SECURITY DEFINER because of that, and only
-- that: it answers inside an entered practice, for the roles the preview admits (owner, admin,
-- reception), with the sealed name, phone and email columns the scanner needs (never the date
-- of birth nor any clinical column); the caller opens them in the transaction that appends
-- `outbox.preview`.
create function app.scanner_clients()
    returns table (patient_id uuid, given_name text, family_name text, date_of_birth date,
                   phone text, email text, given_name_enc bytea, family_name_enc bytea,
                   date_of_birth_enc bytea, phone_enc bytea, email_enc bytea,
                   created_at timestamptz, updated_at timestamptz, practice_id uuid)
    language sql stable security definer
    set search_path = pg_catalog, public
    as $$
        select p.patient_id, p.given_name, p.family_name, null::date, p.phone, p.email,
               p.given_name_enc, p.family_name_enc, null::bytea, p.phone_enc, p.email_enc,
               p.created_at, p.updated_at, p.practice_id
          from public.patient p
         where p.practice_id = app.practice()
           and app.actor_roles() && array['owner', 'admin', 'reception']
    $$;
alter function app.scanner_clients() owner to chartroom_owner;
revoke all on function app.scanner_clients() from public;
grant execute on function app.scanner_clients() to chartroom_runtime;
