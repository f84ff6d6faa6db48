CREATE DATABASE prefect OWNER steward;
