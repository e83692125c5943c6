-- The claim that started the running attempt: a number its worker chose.
-- Every write of an attempt (lease renewal, progress, hand-back, outcome)
-- names its claim, so that when a crash undoes a claim, the attempt it
-- started cannot write over the claim that takes the job next, even one
-- by the same worker for the same attempt number. 0 on rows claimed
-- before this column existed.
alter table spool.jobs add column claim bigint not null default 0;
