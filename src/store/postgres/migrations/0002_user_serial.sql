-- Stable positive numbers for users (User::serial), handed out once each.
CREATE SEQUENCE user_serial AS bigint START 1;
