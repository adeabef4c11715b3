-- Owners' notice emails for subprocessor registry changes (issue 19.4): each recorded change
-- queues one email per practice owner through the durable outbox, in the same transaction as
-- the change rows. The message's cause is the change (its id derived from the change and the
-- owner, so the outbox's one-message-per-cause rule makes it once per owner per change).
alter table outbox_message drop constraint outbox_message_cause;
alter table outbox_message add constraint outbox_message_cause check (cause in (
    'online_booking', 'appointment', 'sms_keyword', 'intake', 'waitlist', 'payment',
    'subprocessor_change'));
alter table outbox_message drop constraint outbox_message_template;
alter table outbox_message add constraint outbox_message_template check (template in (
    'booking_confirmed', 'booking_reminder', 'booking_rescheduled', 'booking_cancelled',
    'intake_request', 'waitlist_offer', 'payment_request', 'stop_confirmed',
    'start_confirmed', 'help', 'push_update', 'subprocessor_change'));
