SELECT size_const_10000();
