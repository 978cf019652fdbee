-- Wake-ups for the server's LISTEN hostq_jobs. Statement-level, so a COPY or a multi-row INSERT
-- sends one notification, and PostgreSQL folds identical notifications of one transaction into
-- one. The payload is empty: a listener re-runs its reservation, it does not trust the message.
-- Inserts made by Ruby inst-jobs into a shared database notify too, which is harmless.
CREATE OR REPLACE FUNCTION hostq_notify_jobs_fn() RETURNS trigger AS $fn$
BEGIN
  PERFORM pg_notify('hostq_jobs', '');
  RETURN NULL;
END;
$fn$ LANGUAGE plpgsql;

CREATE OR REPLACE TRIGGER hostq_notify_jobs_tr
  AFTER INSERT ON delayed_jobs FOR EACH STATEMENT
  EXECUTE PROCEDURE hostq_notify_jobs_fn();
