SELECT size_const_100();
