//! TEMPORARY stub until the Mattermost config writer lands.
