-- Survey activities say which scale their `score` is on (csat 1–5, nps 0–10), for the satisfaction
-- indices of customer analytics.
ALTER TABLE activities ADD COLUMN survey_type TEXT;
