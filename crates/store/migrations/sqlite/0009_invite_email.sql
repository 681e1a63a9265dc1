-- E-mail delivery of the invites a bulk job issued. `email` is NULL (not mailed yet),
-- 'sending' (written and committed before the SMTP transaction starts), 'sent', 'failed'
-- (the server refused it; `email_error` says why) or 'uncertain' (the server stopped while
-- sending: the message may or may not have left, so it is not sent a second time).
ALTER TABLE bulk_invite_results ADD COLUMN email TEXT;
ALTER TABLE bulk_invite_results ADD COLUMN email_error TEXT;
