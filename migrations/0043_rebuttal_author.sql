-- Who wrote the practice's rebuttal of a patient's statement of disagreement (HIPAA
-- 164.526(d)(3); issue 20 part 8, req SIG-07).
--
-- The rebuttal is the practice's statement, linked to the record and carried with every later
-- disclosure of it; the request already names who recorded it (`created_by`) and who accepted
-- or denied it (`closed_by`). `rebuttal_by` names the member who linked the rebuttal, set in
-- the same update that writes it. Rebuttals linked before this migration have no recorded
-- author (null); a rebuttal author without a rebuttal is refused.

alter table amendment_request
    add column rebuttal_by uuid references app_user (user_id),
    add constraint amendment_request_rebuttal_by check (rebuttal_by is null or rebuttal_enc is not null);

grant update (rebuttal_by) on amendment_request to chartroom_runtime;
