#!/usr/bin/perl
# Print every ```sql block of a Markdown file (README.md), in order and as
# written (a block indented inside a list item loses that indentation), for
# sql/readme_examples.sql to run.  Each block is preceded by a comment that
# gives its number (not its line, which every edit above it would move).
use strict;
use warnings;

my $file = shift // 'README.md';
open(my $fh, '<', $file) or die "$file: $!";
my ($in, $indent) = (0, '');
my $n = 0;
while (my $line = <$fh>)
{
	if (!$in && $line =~ /^(\s*)```sql\s*$/)
	{
		($in, $indent) = (1, $1);
		$n++;
		print "-- README.md, sql block $n\n";
		next;
	}
	if ($in && $line =~ /^\s*```\s*$/)
	{
		$in = 0;
		print "\n";
		next;
	}
	next unless $in;
	$line =~ s/^\Q$indent\E//;
	print $line;
}
die "$file: an unterminated ```sql block\n" if $in;
die "$file: no ```sql block\n" if $n == 0;
